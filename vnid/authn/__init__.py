"""Authenticators: passwords (argon2id), TOTP (RFC 6238), device-bound keys of the citizen app,
and throttling of failures."""

from vnid.authn.device import DeviceKey, InvalidCredentials
from vnid.authn.passwords import PasswordHasher, PasswordPolicy, WeakPassword
from vnid.authn.throttle import ThrottlePolicy, ThrottleState, TooManyAttempts
from vnid.authn.totp import TotpSettings, verify_totp

__all__ = [
    "DeviceKey",
    "InvalidCredentials",
    "PasswordHasher",
    "PasswordPolicy",
    "ThrottlePolicy",
    "ThrottleState",
    "TooManyAttempts",
    "TotpSettings",
    "WeakPassword",
    "verify_totp",
]
