"""The ``[payments]`` configuration section (unknown keys are errors naming the key)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.config import ConfigError

__all__ = ["OrganisationConfig", "PaymentsConfig"]


def _check(cls: type, data: Mapping[str, Any], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table", where)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"unknown configuration key '{where}.{key}'", f"{where}.{key}")


@dataclass(frozen=True, slots=True)
class OrganisationConfig:
    """A collecting body: its printed identity and its signing key (PEM files)."""

    agency_code: str
    name: str
    tax_code: str
    address: str
    budget_unit_code: str = ""
    key_file: str = ""
    cert_file: str = ""  # the organisation certificate first, then its issuers
    key_passphrase_file: str = ""


_ORG_PATHS = frozenset({"key_file", "cert_file", "key_passphrase_file"})


@dataclass(frozen=True, slots=True)
class PaymentsConfig:
    catalogue_files: tuple[str, ...] = ()  # empty: the packaged sample catalogue
    payment_ttl_minutes: int = 30
    settlement_delay_days: int = 2
    callback_window_minutes: int = 15
    receipt_template: str = "EBL01"
    # TrueType fonts with Vietnamese glyphs for PDF receipts and reports (Debian fonts-dejavu-core).
    font_regular: str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    font_bold: str = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
    sender_code: str = "V0000000000"
    platform_partner_code: str = ""
    platform_secret: str = ""
    platform_url: str = ""  # the platform's API base (INIT/QUERY); empty: no outgoing calls
    gateway_tmn_code: str = ""
    gateway_secret: str = ""
    gateway_url: str = "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html"
    bank_notification_secret: str = ""
    # Replicas that only serve calls and callbacks can leave the workers to another process.
    workers_enabled: bool = True
    outbox_interval_seconds: float = 1.0
    expiry_interval_seconds: float = 30.0
    # First retry delay after a failed delivery (doubling each time) to the tax authority / portals.
    retry_seconds: float = 30.0
    # The mop-up worker asks the platform about payments still awaiting payment after a while.
    mopup_interval_seconds: float = 60.0
    mopup_after_minutes: float = 5.0
    organisations: tuple[OrganisationConfig, ...] = ()
    accounts: tuple[Mapping[str, str], ...] = ()
    webhooks: tuple[Mapping[str, str], ...] = ()  # {agency_code, url, secret (whsec_...)}

    @classmethod
    def from_config(cls, data: Mapping[str, Any], *, base_dir: Path | None = None
                    ) -> PaymentsConfig:
        """Build from the ``[payments]`` table; relative file paths are resolved against
        ``base_dir`` (the data directory)."""
        _check(cls, data, "payments")
        base = base_dir or Path.cwd()

        def path(value: str) -> str:
            return str(base / value) if value else value

        values: dict[str, Any] = dict(data)
        try:
            orgs = []
            for i, org in enumerate(values.get("organisations", ())):
                _check(OrganisationConfig, org, f"payments.organisations[{i}]")
                org = {k: path(v) if k in _ORG_PATHS else v for k, v in org.items()}
                orgs.append(OrganisationConfig(**org))
            values["organisations"] = tuple(orgs)
            for key in ("catalogue_files", "accounts", "webhooks"):
                values[key] = tuple(values.get(key, ()))
            values["catalogue_files"] = tuple(path(p) for p in values["catalogue_files"])
            for key in ("font_regular", "font_bold"):
                if key in values:
                    values[key] = path(values[key])
            for i, hook in enumerate(values["webhooks"]):
                extra = set(hook) - {"agency_code", "url", "secret"}
                if extra:
                    raise ConfigError(f"unknown configuration key 'payments.webhooks[{i}]."
                                      f"{sorted(extra)[0]}'")
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"payments: {exc}") from None
