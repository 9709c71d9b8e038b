"""The ``[payments]`` configuration section (unknown keys are errors naming the key)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.config import ConfigError, build_section

__all__ = ["OrganisationConfig", "PaymentsConfig"]


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


# Settings that name files: resolved against the data directory.
_PATHS = frozenset({"key_file", "cert_file", "key_passphrase_file", "catalogue_files",
                    "font_regular", "font_bold", "receipt_qr_roots_file"})


@dataclass(frozen=True, slots=True)
class PaymentsConfig:
    catalogue_files: tuple[str, ...] = ()  # empty: the packaged sample catalogue
    payment_ttl_minutes: int = 30
    settlement_delay_days: int = 2
    callback_window_minutes: int = 15
    receipt_template: str = "EBL01"
    # Receipts' QR codes carry a compact JWS by the collecting body's seal (docs/payments.md,
    # "Receipt QR codes"). The page they open (empty: this server's /payments/receipts/check) and
    # the roots that page trusts (empty: the self-signed certificates in the bodies' cert_file).
    receipt_qr_signed: bool = True
    receipt_qr_page_url: str = ""
    receipt_qr_roots_file: str = ""
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
        config = build_section(cls, data, "payments", base_dir=base_dir or Path.cwd(),
                               paths=_PATHS)
        for i, hook in enumerate(config.webhooks):
            extra = set(hook) - {"agency_code", "url", "secret"}
            if extra:
                key = f"payments.webhooks[{i}].{sorted(extra)[0]}"
                raise ConfigError(f"unknown configuration key '{key}'", key)
        return config
