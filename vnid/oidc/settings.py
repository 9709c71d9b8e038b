"""Settings of the OpenID provider: a frozen dataclass built from the ``[identity]`` table.

Limits that the standards fix are checked here, so a configuration cannot weaken them: codes live at
most 60 s, pushed requests less than 600 s (RFC 9126 §2.2 and FAPI 2.0 §5.3.2.2), sessions at most
24 h overall and 1 h idle by default.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vnid.assurance import AcrNames
from vnid.authn.passwords import PasswordPolicy
from vnid.authn.throttle import ThrottlePolicy
from vnid.authn.totp import TotpSettings
from vnid.errors import InvalidInput
from vnid.jose.keys import RotationPolicy
from vnid.oidc.claims import AccountTypeCodes
from vnid.personal_id import PersonalIdRules

__all__ = ["ProviderSettings"]

_SECONDS = {
    "code_lifetime": 60, "par_lifetime": 60, "access_token_lifetime": 600,
    "refresh_token_lifetime": 86400, "offline_refresh_token_lifetime": 30 * 86400,
    "id_token_lifetime": 600, "session_max_age": 86400, "session_idle": 3600,
    "interaction_lifetime": 900, "qr_lifetime": 120, "ciba_lifetime": 300,
    "client_credentials_lifetime": 600, "logout_token_lifetime": 120,
}
_TABLES = {"acr", "password", "throttle_account", "throttle_address", "totp", "keys",
           "personal_id", "account_type_codes"}
_SCALARS = {"issuer", "dpop_require_nonce", "ciba_interval", "default_acr",
            "argon2_time_cost", "argon2_memory_kib", "argon2_parallelism", "renewal_ages"}


def _secs(name: str) -> dt.timedelta:
    return dt.timedelta(seconds=_SECONDS[name])


# Per source address: fair to shared addresses (distinct accounts, credited by successes, unknown
# devices only; vnid/authn/throttle.py), forgotten after an hour without a failure.
ADDRESS_THROTTLE = ThrottlePolicy(free_attempts=20, lockout_after=100,
                                  forget_after=dt.timedelta(hours=1), success_credit=2)


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    issuer: str
    code_lifetime: dt.timedelta = field(default_factory=lambda: _secs("code_lifetime"))
    par_lifetime: dt.timedelta = field(default_factory=lambda: _secs("par_lifetime"))
    access_token_lifetime: dt.timedelta = field(
        default_factory=lambda: _secs("access_token_lifetime"))
    refresh_token_lifetime: dt.timedelta = field(
        default_factory=lambda: _secs("refresh_token_lifetime"))
    offline_refresh_token_lifetime: dt.timedelta = field(
        default_factory=lambda: _secs("offline_refresh_token_lifetime"))
    id_token_lifetime: dt.timedelta = field(default_factory=lambda: _secs("id_token_lifetime"))
    session_max_age: dt.timedelta = field(default_factory=lambda: _secs("session_max_age"))
    session_idle: dt.timedelta = field(default_factory=lambda: _secs("session_idle"))
    interaction_lifetime: dt.timedelta = field(
        default_factory=lambda: _secs("interaction_lifetime"))
    qr_lifetime: dt.timedelta = field(default_factory=lambda: _secs("qr_lifetime"))
    ciba_lifetime: dt.timedelta = field(default_factory=lambda: _secs("ciba_lifetime"))
    client_credentials_lifetime: dt.timedelta = field(
        default_factory=lambda: _secs("client_credentials_lifetime"))
    logout_token_lifetime: dt.timedelta = field(
        default_factory=lambda: _secs("logout_token_lifetime"))
    ciba_interval: int = 5
    dpop_require_nonce: bool = True
    default_acr: str = "LoA1"
    acr: AcrNames = field(default_factory=AcrNames)
    password: PasswordPolicy = field(default_factory=PasswordPolicy)
    throttle_account: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    throttle_address: ThrottlePolicy = field(default_factory=lambda: ADDRESS_THROTTLE)
    totp: TotpSettings = field(default_factory=TotpSettings)
    keys: RotationPolicy = field(default_factory=RotationPolicy)
    personal_id: PersonalIdRules = field(default_factory=PersonalIdRules)
    account_type_codes: AccountTypeCodes = field(default_factory=AccountTypeCodes)
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    renewal_ages: tuple[int, ...] = (14, 25, 40, 60)

    def __post_init__(self) -> None:
        if not self.issuer.startswith(("https://", "http://")) or self.issuer.endswith("/") \
                or "?" in self.issuer or "#" in self.issuer:
            raise InvalidInput("issuer must be an http(s) URL without a trailing slash, query "
                               "or fragment (RFC 8414 §2)", reason="INVALID_SETTING")
        if not dt.timedelta(seconds=1) <= self.code_lifetime <= dt.timedelta(seconds=60):
            raise InvalidInput("code_lifetime must be 1-60 seconds", reason="INVALID_SETTING")
        if not dt.timedelta(seconds=5) <= self.par_lifetime < dt.timedelta(seconds=600):
            raise InvalidInput("par_lifetime must be at least 5 and below 600 seconds",
                               reason="INVALID_SETTING")
        if self.session_max_age > dt.timedelta(hours=24) or \
                self.session_idle > self.session_max_age:
            raise InvalidInput("session_max_age is at most 24 h and session_idle at most that",
                               reason="INVALID_SETTING")
        if self.acr.parse(self.default_acr) is None:
            raise InvalidInput("default_acr is not a known acr value", reason="INVALID_SETTING")
        if not 1 <= self.ciba_interval <= 60:
            raise InvalidInput("ciba_interval must be 1-60 seconds", reason="INVALID_SETTING")

    @classmethod
    def from_config(cls, data: Mapping[str, Any], *, default_issuer: str) -> ProviderSettings:
        known = set(_SECONDS) | _TABLES | _SCALARS
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(f"unknown identity setting {sorted(unknown)[0]!r}",
                               reason="INVALID_SETTING")
        kwargs: dict[str, Any] = {"issuer": str(data.get("issuer", default_issuer)).rstrip("/")}
        for name in _SECONDS:
            if name in data:
                kwargs[name] = dt.timedelta(seconds=float(data[name]))
        for name in ("dpop_require_nonce",):
            if name in data:
                kwargs[name] = _strict_bool(data[name], name)
        for name in ("ciba_interval", "argon2_time_cost", "argon2_memory_kib",
                     "argon2_parallelism"):
            if name in data:
                kwargs[name] = int(data[name])
        if "default_acr" in data:
            kwargs["default_acr"] = str(data["default_acr"])
        if "renewal_ages" in data:
            kwargs["renewal_ages"] = tuple(int(a) for a in data["renewal_ages"])
        tables = {
            "acr": AcrNames.from_config, "password": PasswordPolicy.from_config,
            "throttle_account": ThrottlePolicy.from_config,
            "throttle_address": lambda table: ThrottlePolicy.from_config(table, ADDRESS_THROTTLE),
            "totp": TotpSettings.from_config,
            "keys": RotationPolicy.from_config, "personal_id": PersonalIdRules.from_config,
            "account_type_codes": AccountTypeCodes.from_config,
        }
        for name, build in tables.items():
            if name in data:
                if not isinstance(data[name], Mapping):
                    raise InvalidInput(f"identity.{name} must be a table", reason="INVALID_SETTING")
                kwargs[name] = build(data[name])
        return cls(**kwargs)

    # Endpoint URLs, all under the issuer.
    @property
    def authorization_endpoint(self) -> str:
        return self.issuer + "/authorize"

    @property
    def par_endpoint(self) -> str:
        return self.issuer + "/par"

    @property
    def token_endpoint(self) -> str:
        return self.issuer + "/token"

    @property
    def userinfo_endpoint(self) -> str:
        return self.issuer + "/userinfo"

    @property
    def jwks_uri(self) -> str:
        return self.issuer + "/jwks"

    @property
    def introspection_endpoint(self) -> str:
        return self.issuer + "/introspect"

    @property
    def revocation_endpoint(self) -> str:
        return self.issuer + "/revoke"

    @property
    def end_session_endpoint(self) -> str:
        return self.issuer + "/logout"

    @property
    def backchannel_authentication_endpoint(self) -> str:
        return self.issuer + "/bc-authorize"


def _strict_bool(value: Any, name: str) -> bool:
    """true/false (TOML), or from an environment override one of true/false, yes/no, 1/0 in any
    case; anything else is an error naming the setting (``bool("false")`` is True)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else ""
    if text in {"true", "yes", "1"}:
        return True
    if text in {"false", "no", "0"}:
        return False
    raise InvalidInput(f"identity.{name} must be true or false, not {value!r}",
                       reason="INVALID_SETTING")
