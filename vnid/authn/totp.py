"""Time-based one-time passwords (RFC 6238) through pyotp, with replay protection.

A code is accepted within ``window`` time steps either side of ``now`` and only if its time step is
later than the last step accepted for the account (RFC 6238 §5.2: "the verifier MUST NOT accept the
second attempt of the OTP after the successful validation"). The caller stores the returned step.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyotp

from vnid.errors import InvalidInput

__all__ = ["TotpSettings", "new_totp_secret", "provisioning_uri", "verify_totp"]


@dataclass(frozen=True, slots=True)
class TotpSettings:
    issuer: str = "VNeGov"
    digits: int = 6
    interval: int = 30
    window: int = 1

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> TotpSettings:
        unknown = set(data) - {"issuer", "digits", "interval", "window"}
        if unknown:
            raise InvalidInput(f"unknown totp setting {sorted(unknown)[0]!r}",
                               reason="INVALID_SETTING")
        d = cls()
        settings = cls(issuer=str(data.get("issuer", d.issuer)),
                       digits=int(data.get("digits", d.digits)),
                       interval=int(data.get("interval", d.interval)),
                       window=int(data.get("window", d.window)))
        if settings.digits not in (6, 8) or not 15 <= settings.interval <= 60 \
                or not 0 <= settings.window <= 2:
            raise InvalidInput("totp: digits 6 or 8, interval 15-60 s, window 0-2",
                               reason="INVALID_SETTING")
        return settings


def new_totp_secret() -> str:
    """A fresh 160-bit secret in base32 (RFC 4226 §4 recommends 160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account_name: str, settings: TotpSettings) -> str:
    """The ``otpauth://`` URI an authenticator app scans."""
    totp = pyotp.TOTP(secret, digits=settings.digits, interval=settings.interval)
    return str(totp.provisioning_uri(name=account_name, issuer_name=settings.issuer))


def verify_totp(secret: str, code: str, *, now: dt.datetime, last_step: int | None,
                settings: TotpSettings) -> int | None:
    """The time step ``code`` belongs to if it is valid and not replayed, else ``None``."""
    code = code.strip().replace(" ", "")
    if len(code) != settings.digits or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=settings.digits, interval=settings.interval)
    step_now = int(now.timestamp()) // settings.interval
    matched: int | None = None
    for offset in range(-settings.window, settings.window + 1):
        step = step_now + offset
        # Compare every candidate (constant work) rather than stopping at the first match.
        if hmac.compare_digest(totp.generate_otp(step), code) and matched is None:
            matched = step
    if matched is None or (last_step is not None and matched <= last_step):
        return None
    return matched
