"""Fees and charges: the fee catalogue, payments over VietQR, the national payment platform and
gateways, a double-entry ledger, signed e-receipts and reconciliation."""

from payments.errors import PaymentsError

__all__ = ["PaymentsError"]
