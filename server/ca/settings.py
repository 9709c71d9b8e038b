"""The ``[ca]`` configuration section.

Relative paths are resolved against the data directory. Without a ``[ca]`` section the CA runs
on the embedded development PKI in ``[pki] directory`` (what ``vnegov init`` writes), with keys in
encrypted PKCS#8 files; with neither, the CA module is disabled. Keys in a PKCS#11 token::

    [ca]
    key_source = "pkcs11"
    issuing_key = "issuing-ca"        # labels in the token instead of file paths
    ocsp_key = "ocsp-responder"
    tsa_key = "tsa"
    [ca.pkcs11]
    module = "/usr/lib/softhsm/libsofthsm2.so"
    token_label = "vnegov-ca"
    pin_file = "secrets/token-pin"
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.config import Config, ConfigError
from signing.ca.profiles import RenewalRules
from signing.errors import SigningError

__all__ = ["CaSettings", "Pkcs11Settings", "TsaConfig"]

_PATH_KEYS = {"issuing_certificate", "root_certificate", "root_crl", "ocsp_certificate",
              "tsa_certificate", "key_passphrase_file", "profiles_file", "pin_file"}
_KEY_KEYS = {"issuing_key", "root_key", "ocsp_key", "tsa_key"}


@dataclass(frozen=True, slots=True)
class Pkcs11Settings:
    module: str = "/usr/lib/softhsm/libsofthsm2.so"
    token_label: str = ""
    pin_file: str = ""


@dataclass(frozen=True, slots=True)
class TsaConfig:
    policy_oid: str = ""  # empty: the CA's own TSA policy
    accuracy_seconds: int = 1
    accuracy_millis: int = 0
    hash_algorithms: tuple[str, ...] = ("sha256", "sha384", "sha512")


@dataclass(frozen=True, slots=True)
class CaSettings:
    enabled: bool = True
    # "file": keys are encrypted PKCS#8 files (paths); "pkcs11": keys are labels in a token.
    key_source: str = "file"
    name: str = "issuing-ca"  # URL name of the issuing CA: /pki/crl/<name>.crl, ...
    issuing_certificate: str = ""
    issuing_key: str = ""
    root_certificate: str = ""
    # The root's key signs the root's CRL; empty when the root is offline (then root_crl names a
    # CRL file the root signed, served as is).
    root_key: str = ""
    root_crl: str = ""
    ocsp_certificate: str = ""
    ocsp_key: str = ""
    tsa_certificate: str = ""
    tsa_key: str = ""
    key_passphrase_file: str = ""
    profiles_file: str = ""  # empty: the profiles shipped with the package
    # Approve requests from authorised managing bodies at once; otherwise an operator approves.
    auto_approve: bool = True
    service_target_working_days: float = 3.0
    holidays: tuple[str, ...] = ()  # YYYY-MM-DD, public holidays in Vietnam
    ocsp_validity_seconds: int = 4 * 3600
    # Renew the CA's own OCSP-responder and time-stamping certificates (same key, fresh validity)
    # when they have less than this many days left (server/ca/renewal.py).
    service_renew_before_days: int = 30
    ocsp_cache_entries: int = 100_000
    crl_validity_seconds: int = 24 * 3600
    delta_crl_validity_seconds: int = 3600
    crl_refresh_seconds: int = 3600
    status_poll_seconds: float = 2.0
    reorganisation_batch_size: int = 50
    renewal: RenewalRules | None = None  # overrides every profile's renewal rules
    pkcs11: Pkcs11Settings = field(default_factory=Pkcs11Settings)
    tsa: TsaConfig = field(default_factory=TsaConfig)

    def __post_init__(self) -> None:
        if self.key_source not in {"file", "pkcs11"}:
            raise ConfigError("ca.key_source must be 'file' or 'pkcs11'", "ca.key_source")
        if self.key_source == "pkcs11" and not self.pkcs11.token_label:
            raise ConfigError("ca.pkcs11.token_label is required with key_source = 'pkcs11'",
                              "ca.pkcs11.token_label")
        for name in ("ocsp_validity_seconds", "crl_validity_seconds",
                     "delta_crl_validity_seconds", "crl_refresh_seconds",
                     "reorganisation_batch_size", "ocsp_cache_entries"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ca.{name} must be positive", f"ca.{name}")
        if self.crl_refresh_seconds >= self.crl_validity_seconds:
            raise ConfigError("ca.crl_refresh_seconds must be shorter than crl_validity_seconds "
                              "(a CRL must be replaced before its nextUpdate)",
                              "ca.crl_refresh_seconds")
        for day in self.holidays:
            try:
                dt.date.fromisoformat(day)
            except ValueError:
                raise ConfigError(f"ca.holidays: {day!r} is not YYYY-MM-DD", "ca.holidays") \
                    from None

    @property
    def holiday_dates(self) -> frozenset[dt.date]:
        return frozenset(dt.date.fromisoformat(d) for d in self.holidays)

    @property
    def configured(self) -> bool:
        return self.enabled and bool(self.issuing_certificate and self.issuing_key)

    @classmethod
    def from_config(cls, data: Mapping[str, Any], *, base_dir: Path) -> CaSettings:
        settings: CaSettings = _build(cls, data, "ca.", base_dir)
        return settings

    @classmethod
    def for_server(cls, config: Config) -> CaSettings:
        """The settings of ``config``: its ``[ca]`` section, or the development PKI's files."""
        data = dict(config.extensions.get("ca", {}))
        base = Path(config.data_dir or ".")
        pki = config.pki.directory
        if pki and "issuing_certificate" not in data:
            d = Path(pki)
            defaults = {
                "issuing_certificate": d / "issuing-ca.pem",
                "issuing_key": d / "issuing-ca.key.pem",
                "root_certificate": d / "root-ca.pem",
                "root_key": d / "root-ca.key.pem",
                "ocsp_certificate": d / "ocsp-responder.pem",
                "ocsp_key": d / "ocsp-responder.key.pem",
                "tsa_certificate": d / "tsa.pem",
                "tsa_key": d / "tsa.key.pem",
                "key_passphrase_file": config.pki.key_passphrase_file,
            }
            for key, value in defaults.items():
                data.setdefault(key, str(value))
        return cls.from_config(data, base_dir=base)


def _build(cls: Any, data: Mapping[str, Any], prefix: str, base_dir: Path) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.')} must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown configuration key '{prefix}{key}'", f"{prefix}{key}")
        tp = hints[key]
        if key == "renewal":
            try:
                kwargs[key] = RenewalRules.from_config(value)
            except SigningError as exc:
                raise ConfigError(f"{prefix}renewal: {exc.message}", f"{prefix}renewal") from None
        elif dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{prefix}{key}.", base_dir)
        else:
            kwargs[key] = _scalar(tp, value, f"{prefix}{key}", base_dir,
                                  resolve=key in _PATH_KEYS or (
                                      key in _KEY_KEYS and data.get("key_source", "file")
                                      == "file"))
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{prefix.rstrip('.')}: {exc}") from None


def _scalar(tp: Any, value: Any, key: str, base_dir: Path, *, resolve: bool) -> Any:
    origin = typing.get_origin(tp)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"configuration key {key!r} must be a list of strings", key)
        return tuple(value)
    if tp is bool or tp == "bool":
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        if not isinstance(value, bool):
            raise ConfigError(f"configuration key {key!r} must be true or false", key)
        return value
    if tp is int or tp is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"configuration key {key!r} must be a number", key) from None
    if not isinstance(value, str):
        raise ConfigError(f"configuration key {key!r} must be a string", key)
    if resolve and value:
        return str((base_dir / Path(value).expanduser()).resolve())
    return value
