"""Payment channels: VietQR (EMVCo QR, NAPAS 247), the national payment platform (v1.0.6), an
HMAC-SHA512 gateway in the VNPay style; ISO 11649 creditor references; simulators."""

from payments.channels.emvco_qr import (
    NAPAS_GUID,
    VietQr,
    build_vietqr,
    crc16_ccitt_false,
    parse_vietqr,
)
from payments.channels.iso11649 import (
    corrections,
    create_reference,
    find_references,
    is_valid_reference,
    valid_neighbours,
    validate_reference,
)
from payments.channels.simulators import (
    BankSimulator,
    BankTransfer,
    GatewaySimulator,
    PlatformSimulator,
)
from payments.channels.vietqr import (
    BankNotification,
    parse_bank_notification,
    qr_png,
    qr_svg,
    sign_bank_notification,
    vietqr_for_payment,
)

__all__ = [
    "NAPAS_GUID",
    "BankNotification",
    "BankSimulator",
    "BankTransfer",
    "GatewaySimulator",
    "PlatformSimulator",
    "VietQr",
    "build_vietqr",
    "corrections",
    "crc16_ccitt_false",
    "create_reference",
    "find_references",
    "is_valid_reference",
    "parse_bank_notification",
    "parse_vietqr",
    "qr_png",
    "qr_svg",
    "sign_bank_notification",
    "valid_neighbours",
    "validate_reference",
    "vietqr_for_payment",
]
