"""Passwords: argon2id hashing (RFC 9106) and a policy that refuses weak and breached passwords.

The policy follows NIST SP 800-63B §3.1.1.2: a minimum length, no composition rules, and a check
against values known to be commonly used or compromised — a built-in list of the most common
passwords (English and Vietnamese), passwords made of the account's own data (ID number, birth
date, name), trivial patterns, and a :class:`BreachedPasswords` port for a larger corpus. One
implementation of the port, :class:`Sha1Blocklist`, reads the "Pwned Passwords" file format
(upper-case hex SHA-1, optionally ``:count``, one per line), which deployments download separately.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from vnid.errors import InvalidInput

__all__ = [
    "BreachedPasswords",
    "COMMON_PASSWORDS",
    "PasswordHasher",
    "PasswordPolicy",
    "Sha1Blocklist",
    "WeakPassword",
    "parse_sha1_lines",
]


class WeakPassword(InvalidInput):
    """The password is too short, too common, derived from the account's own data, or breached."""

    reason = "WEAK_PASSWORD"

# The most common passwords of public breach corpora, plus common Vietnamese choices.
COMMON_PASSWORDS: frozenset[str] = frozenset("""
123456 123456789 12345678 password qwerty123 qwerty 1q2w3e4r 12345 1234567 111111 123123 1234567890
000000 abc123 iloveyou password1 123321 654321 qwertyuiop 123456a a123456 1qaz2wsx 987654321
dragon monkey letmein football baseball sunshine princess superman trustno1 welcome admin
administrator passw0rd p@ssw0rd p@ssword zxcvbnm asdfghjkl 1q2w3e4r5t 1qaz2wsx3edc qazwsx
iloveyou1 whatever starwars master shadow michael jennifer hello123 freedom charlie donald
computer internet secret login changeme default matkhau matkhau123 matkhau@123 anhyeuem
emyeuanh yeuem123 anhyeuem123 vietnam vietnam123 hanoi hanoi123 saigon saigon123 hochiminh
123456789a 12345678a abcd1234 abc12345 admin123 admin@123 root123 user123 guest123 test1234
88888888 66666666 99999999 11111111 22222222 12341234 11223344 147258369 159753 147852369
asdf1234 zaq12wsx qwer1234 1234qwer q1w2e3r4 a1b2c3d4 password123 password@123 welcome123
""".split())

_SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def parse_sha1_lines(data: bytes) -> list[bytes]:
    """The SHA-1 digests of a "Pwned Passwords" file: 40 hex digits per line, optionally
    followed by ``:count``."""
    digests = []
    for line in data.splitlines():
        text = line.split(b":", 1)[0].strip()
        if not text:
            continue
        if not re.fullmatch(rb"[0-9A-Fa-f]{40}", text):
            raise InvalidInput("a breached-password list holds 40 hex digits per line",
                               reason="INVALID_BLOCKLIST")
        digests.append(bytes.fromhex(text.decode()))
    return digests


class BreachedPasswords(Protocol):
    """Answers whether a password appears in a corpus of breached passwords."""

    def is_breached(self, password: str) -> bool:
        ...


class Sha1Blocklist:
    """Breached passwords from a "Pwned Passwords"-format file (SHA-1 hex[:count] per line)."""

    def __init__(self, digests: Iterable[bytes]) -> None:
        self._digests = frozenset(digests)

    @classmethod
    def from_bytes(cls, data: bytes) -> Sha1Blocklist:
        return cls(parse_sha1_lines(data))

    def __len__(self) -> int:
        return len(self._digests)

    def is_breached(self, password: str) -> bool:
        return hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).digest() \
            in self._digests


def _fold(text: str) -> str:
    """Lower case without diacritics, so 'Nguyễn' and 'nguyen' compare equal."""
    decomposed = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    min_length: int = 10
    max_length: int = 128

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> PasswordPolicy:
        unknown = set(data) - {"min_length", "max_length"}
        if unknown:
            raise InvalidInput(f"unknown password setting {sorted(unknown)[0]!r}",
                               reason="INVALID_SETTING")
        policy = cls(**{k: int(v) for k, v in data.items()})
        if policy.min_length < 8 or policy.max_length < policy.min_length:
            raise InvalidInput("password min_length must be at least 8 and at most max_length",
                               reason="INVALID_SETTING")
        return policy

    def check(self, password: str, *, personal_data: Iterable[str] = (),
              breached: BreachedPasswords | None = None) -> None:
        """Raise :class:`WeakPassword` (with a reason a person can act on) or return."""
        normalized = unicodedata.normalize("NFC", password)
        if len(normalized) < self.min_length:
            raise WeakPassword(f"use at least {self.min_length} characters",
                               metadata={"rule": "too_short"})
        if len(normalized) > self.max_length:
            raise WeakPassword(f"use at most {self.max_length} characters",
                               metadata={"rule": "too_long"})
        folded = _fold(normalized)
        if folded in COMMON_PASSWORDS or folded.rstrip("!.@#0123456789") in COMMON_PASSWORDS:
            raise WeakPassword("this password is among the most commonly used",
                               metadata={"rule": "common"})
        if len(set(folded)) <= 2 or any(folded in s or folded in s[::-1] for s in _SEQUENCES):
            raise WeakPassword("this password is a trivial pattern", metadata={"rule": "pattern"})
        for item in personal_data:
            for part in re.split(r"[\s\-/.]+", _fold(item)):
                if len(part) >= 4 and part in folded:
                    raise WeakPassword("do not use your ID number, name or birth date",
                                       metadata={"rule": "personal"})
        if breached is not None and breached.is_breached(normalized):
            raise WeakPassword("this password has appeared in a data breach",
                               metadata={"rule": "breached"})


class PasswordHasher:
    """argon2id with configurable cost (RFC 9106 "low memory" parameters by default)."""

    def __init__(self, *, time_cost: int = 3, memory_cost_kib: int = 65536,
                 parallelism: int = 4) -> None:
        self._hasher = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_cost_kib,
                                             parallelism=parallelism, type=argon2.Type.ID)

    def hash(self, password: str) -> str:
        return self._hasher.hash(unicodedata.normalize("NFC", password))

    def verify(self, encoded: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(encoded, unicodedata.normalize("NFC", password)))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, encoded: str) -> bool:
        return bool(self._hasher.check_needs_rehash(encoded))

    def dummy_verify(self, password: str) -> None:
        """Spend the time of one verification, so an unknown account is not told apart by timing."""
        self.verify(self._dummy, password)

    @property
    def _dummy(self) -> str:
        cached: str | None = getattr(self, "_dummy_hash", None)
        if cached is None:
            cached = self._hasher.hash("not-a-password-of-anyone")
            object.__setattr__(self, "_dummy_hash", cached)
        return cached
