"""The provider's signing keys (RFC 7517 JWK sets) and their rotation.

One key is *active* per algorithm (ES256 on P-256, PS256 on RSA-2048, EdDSA on Ed25519) and signs ID
tokens, logout tokens and signed userinfo. A replacement is *published* in the JWKS ahead of use
(``publish_ahead``), so relying parties that cache the JWKS already know it when it starts signing;
the old key stays published, *retired*, for ``retain_after_retire`` so tokens it signed still verify.

Private keys are stored as encrypted PKCS#8 (the embedded deployment); whoever stores them never sees
them in the clear. Everything is a pure function of the records and ``now``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from vnid.errors import FailedPrecondition, InvalidInput

__all__ = [
    "KeyRing",
    "KeyState",
    "RotationPolicy",
    "SigningKeyRecord",
    "generate_signing_key",
    "plan_rotation",
]

SUPPORTED_ALGS = ("ES256", "PS256", "EdDSA")


class KeyState(StrEnum):
    PUBLISHED = "published"
    ACTIVE = "active"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    kid: str
    alg: str
    state: KeyState
    private_pkcs8: bytes  # PEM, encrypted with the key-store passphrase
    public_jwk: Mapping[str, Any]
    created_at: dt.datetime
    activated_at: dt.datetime | None = None
    retired_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class RotationPolicy:
    algorithms: tuple[str, ...] = SUPPORTED_ALGS
    rotate_after: dt.timedelta = dt.timedelta(days=90)
    publish_ahead: dt.timedelta = dt.timedelta(days=2)
    retain_after_retire: dt.timedelta = dt.timedelta(days=7)

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> RotationPolicy:
        known = {"algorithms", "rotate_after_days", "publish_ahead_hours",
                 "retain_after_retire_hours"}
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(f"unknown key setting {sorted(unknown)[0]!r}",
                               reason="INVALID_SETTING")
        d = cls()
        algs = tuple(data.get("algorithms", d.algorithms))
        if not algs or any(a not in SUPPORTED_ALGS for a in algs):
            raise InvalidInput(f"keys.algorithms must be among {', '.join(SUPPORTED_ALGS)}",
                               reason="INVALID_SETTING")
        policy = cls(
            algorithms=algs,
            rotate_after=dt.timedelta(days=float(data.get("rotate_after_days", 90))),
            publish_ahead=dt.timedelta(hours=float(data.get("publish_ahead_hours", 48))),
            retain_after_retire=dt.timedelta(
                hours=float(data.get("retain_after_retire_hours", 168))),
        )
        if policy.publish_ahead >= policy.rotate_after:
            raise InvalidInput("keys.publish_ahead must be shorter than rotate_after",
                               reason="INVALID_SETTING")
        return policy


def _jwk_for(private: Any, alg: str, kid: str) -> Key:
    params = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.import_key(private, params)  # type: ignore[arg-type]
    if alg == "PS256":
        return RSAKey.import_key(private, params)  # type: ignore[arg-type]
    return OKPKey.import_key(private, params)  # type: ignore[arg-type]


def generate_signing_key(alg: str, *, now: dt.datetime, passphrase: bytes,
                         state: KeyState = KeyState.PUBLISHED) -> SigningKeyRecord:
    if alg == "ES256":
        private: Any = ec.generate_private_key(ec.SECP256R1())
    elif alg == "PS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise InvalidInput(f"unsupported signing algorithm {alg}", reason="UNSUPPORTED_ALG")
    kid = f"{alg.lower()}-{now:%Y%m%d}-{secrets.token_hex(4)}"
    jwk = _jwk_for(private, alg, kid)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(passphrase))
    public = dict(jwk.as_dict(private=False))
    return SigningKeyRecord(kid=kid, alg=alg, state=state, private_pkcs8=pem, public_jwk=public,
                            created_at=now, activated_at=now if state is KeyState.ACTIVE else None)


def plan_rotation(records: Sequence[SigningKeyRecord], *, now: dt.datetime, policy: RotationPolicy,
                  passphrase: bytes) -> tuple[list[SigningKeyRecord], list[str]]:
    """What to store (new or changed records) and which kids to delete, for the keys to follow the
    policy at ``now``. Calling it again with the result applied changes nothing."""
    changed: list[SigningKeyRecord] = []
    deleted: list[str] = []
    for alg in policy.algorithms:
        mine = [r for r in records if r.alg == alg]
        active = [r for r in mine if r.state is KeyState.ACTIVE]
        published = sorted((r for r in mine if r.state is KeyState.PUBLISHED),
                           key=lambda r: r.created_at)
        current = max(active, key=lambda r: r.activated_at or r.created_at) if active else None
        if current is None:
            if published:
                changed.append(dataclasses.replace(published[0], state=KeyState.ACTIVE,
                                                   activated_at=now))
            else:
                changed.append(generate_signing_key(alg, now=now, passphrase=passphrase,
                                                    state=KeyState.ACTIVE))
            continue
        age = now - (current.activated_at or current.created_at)
        if published and age >= policy.rotate_after and \
                now - published[0].created_at >= policy.publish_ahead:
            changed.append(dataclasses.replace(published[0], state=KeyState.ACTIVE,
                                               activated_at=now))
            changed.append(dataclasses.replace(current, state=KeyState.RETIRED, retired_at=now))
        elif not published and age >= policy.rotate_after - policy.publish_ahead:
            changed.append(generate_signing_key(alg, now=now, passphrase=passphrase))
        for extra in active:
            if extra is not current:
                changed.append(dataclasses.replace(extra, state=KeyState.RETIRED, retired_at=now))
    for record in records:
        if record.state is KeyState.RETIRED and record.retired_at is not None and \
                now - record.retired_at >= policy.retain_after_retire:
            deleted.append(record.kid)
    return changed, deleted


class KeyRing:
    """The keys in use: the active signing key per algorithm and the published JWKS."""

    def __init__(self, records: Iterable[SigningKeyRecord], passphrase: bytes) -> None:
        self.records = sorted(records, key=lambda r: (r.alg, r.created_at, r.kid))
        self._signing: dict[str, Key] = {}
        for record in self.records:
            if record.state is KeyState.ACTIVE:
                private = serialization.load_pem_private_key(record.private_pkcs8, passphrase)
                self._signing[record.alg] = _jwk_for(private, record.alg, record.kid)
        keys = [dict(r.public_jwk) for r in self.records]
        self.jwks: dict[str, Any] = {"keys": keys}
        self.jwks_json = json.dumps(self.jwks, separators=(",", ":")).encode()
        self._public = {r.kid: r for r in self.records}

    @property
    def algorithms(self) -> list[str]:
        return sorted(self._signing)

    def signing_key(self, alg: str) -> Key:
        key = self._signing.get(alg)
        if key is None:
            raise FailedPrecondition(f"no active {alg} signing key", reason="NO_SIGNING_KEY")
        return key

    def public_keys(self) -> list[Key]:
        out: list[Key] = []
        for record in self.records:
            jwk = dict(record.public_jwk)
            cls = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}[jwk["kty"]]
            out.append(cls.import_key(jwk))  # type: ignore[attr-defined]
        return out
