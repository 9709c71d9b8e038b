"""Tables of the payments domain (fees, payments, ledger, receipts, reconciliation).

Amounts are BIGINT đồng. Ledger postings and receipts are append-only: no code path updates or
deletes them, and the migration installs triggers that refuse UPDATE/DELETE on both databases.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import Base, BigIntPK, UTCDateTime

__all__ = [
    "CollectionAccountRow",
    "ChannelEventRow",
    "ExceptionRow",
    "IdempotencyRow",
    "LedgerPostingRow",
    "LedgerTransactionRow",
    "OperationRow",
    "OutboxRow",
    "PaymentRow",
    "ReceiptCancellationRow",
    "ReceiptCounterRow",
    "ReceiptRow",
    "ReconItemRow",
    "RefundRow",
    "StatementLineRow",
    "StatementRow",
    "TaxSubmissionRow",
    "TransitionRow",
]


class CollectionAccountRow(Base):
    __tablename__ = "payments_accounts"

    agency_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    bank_bin: Mapped[str] = mapped_column(String(6))
    account_number: Mapped[str] = mapped_column(String(19))
    account_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    treasury_office_code: Mapped[str] = mapped_column(String(4))
    budget_unit_code: Mapped[str] = mapped_column(String(7))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class PaymentRow(Base):
    __tablename__ = "payments_payments"
    __table_args__ = (Index("ix_payments_payments_state_expires", "state", "expires_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    agency_code: Mapped[str] = mapped_column(String(40), index=True)
    province_code: Mapped[str] = mapped_column(String(2))
    procedure_code: Mapped[str] = mapped_column(String(60))
    dossier_code: Mapped[str] = mapped_column(String(80))
    payer_json: Mapped[str] = mapped_column(Text)
    lines_json: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(String(25), unique=True)
    channel: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(24))
    amount_due: Mapped[int] = mapped_column(BigInteger)
    collected: Mapped[int] = mapped_column(BigInteger)
    refunded: Mapped[int] = mapped_column(BigInteger)
    held: Mapped[int] = mapped_column(BigInteger)
    settled: Mapped[int] = mapped_column(BigInteger)
    line_refunded_json: Mapped[str] = mapped_column(Text)
    channel_url: Mapped[str] = mapped_column(Text)
    # "<agency>:<dossier>" while the payment is open or paid, NULL once it expired, was
    # cancelled or fully refunded: one live payment per dossier, so nobody is charged twice.
    dossier_key: Mapped[str | None] = mapped_column(String(130), unique=True, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class TransitionRow(Base):
    __tablename__ = "payments_transitions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments_payments.id"), index=True)
    from_state: Mapped[str] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(200))


class IdempotencyRow(Base):
    __tablename__ = "payments_idempotency"
    __table_args__ = (UniqueConstraint("caller", "method", "request_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    caller: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean)
    result: Mapped[str] = mapped_column(String(200))
    error_class: Mapped[str] = mapped_column(String(100))
    error_reason: Mapped[str] = mapped_column(String(100))
    error_message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ChannelEventRow(Base):
    """Each confirmation of money a channel sent, once: the unique key absorbs duplicates."""

    __tablename__ = "payments_channel_events"
    __table_args__ = (UniqueConstraint("channel", "transaction_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(20))
    transaction_id: Mapped[str] = mapped_column(String(80))
    reference: Mapped[str] = mapped_column(String(80), index=True)
    payment_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(24))


class RefundRow(Base):
    __tablename__ = "payments_refunds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments_payments.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class LedgerTransactionRow(Base):
    __tablename__ = "payments_ledger_transactions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(30))
    payment_id: Mapped[str] = mapped_column(String(40), index=True)
    memo: Mapped[str] = mapped_column(String(300))
    reverses: Mapped[str] = mapped_column(String(120))


class LedgerPostingRow(Base):
    __tablename__ = "payments_ledger_postings"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(
        ForeignKey("payments_ledger_transactions.id"), index=True)
    account: Mapped[str] = mapped_column(String(120), index=True)
    debit: Mapped[int] = mapped_column(BigInteger)
    credit: Mapped[int] = mapped_column(BigInteger)


class OutboxRow(Base):
    """Durable work written in the same transaction as the change that needs it."""

    __tablename__ = "payments_outbox"
    __table_args__ = (UniqueConstraint("kind", "ref"),
                      Index("ix_payments_outbox_state_next", "state", "next_attempt_at"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(30))
    ref: Mapped[str] = mapped_column(String(120))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReceiptCounterRow(Base):
    __tablename__ = "payments_receipt_counters"

    template: Mapped[str] = mapped_column(String(5), primary_key=True)
    series: Mapped[str] = mapped_column(String(3), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer)


class ReceiptRow(Base):
    __tablename__ = "payments_receipts"
    __table_args__ = (UniqueConstraint("template", "series", "year", "number"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments_payments.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    collector: Mapped[str] = mapped_column(String(40))
    template: Mapped[str] = mapped_column(String(5))
    series: Mapped[str] = mapped_column(String(3))
    year: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    total: Mapped[int] = mapped_column(BigInteger)
    # "<payment>:<collector>" for an original, NULL otherwise: one original per body and payment.
    original_key: Mapped[str | None] = mapped_column(String(100), unique=True, nullable=True)
    related_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    xml_sha256: Mapped[str] = mapped_column(String(64))
    # The signed QR (compact JWS, format BL1: payments/receipts/qr_jws.py); NULL on receipts
    # issued before receipts carried one, or by a body without a seal for QR codes.
    qr_token: Mapped[str | None] = mapped_column(Text, nullable=True)


class ReceiptCancellationRow(Base):
    __tablename__ = "payments_receipt_cancellations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    receipt_id: Mapped[str] = mapped_column(ForeignKey("payments_receipts.id"), unique=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(500))
    xml: Mapped[bytes] = mapped_column(LargeBinary)


class TaxSubmissionRow(Base):
    """A document sent to the tax authority and its acknowledgement."""

    __tablename__ = "payments_tax_submissions"

    message_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    document_id: Mapped[str] = mapped_column(String(40), index=True)
    state: Mapped[str] = mapped_column(String(12))
    ack_id: Mapped[str] = mapped_column(String(80))
    detail: Mapped[str] = mapped_column(String(500))
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class StatementRow(Base):
    __tablename__ = "payments_statements"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(40), index=True)
    statement_id: Mapped[str] = mapped_column(String(80))
    source_sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(20))
    from_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    to_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    opening: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    closing: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    line_count: Mapped[int] = mapped_column(Integer)
    new_lines: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class StatementLineRow(Base):
    __tablename__ = "payments_statement_lines"
    __table_args__ = (UniqueConstraint("account", "key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("payments_statements.id"), index=True)
    account: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(BigInteger)
    credit: Mapped[bool] = mapped_column(Boolean)
    booking_date: Mapped[dt.date] = mapped_column(Date, index=True)
    value_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    bank_ref: Mapped[str] = mapped_column(String(100), index=True)
    end_to_end: Mapped[str] = mapped_column(String(100), index=True)
    remittance: Mapped[str] = mapped_column(String(500))
    counterparty: Mapped[str] = mapped_column(String(200))
    counter_account: Mapped[str] = mapped_column(String(40))
    reconciled: Mapped[bool] = mapped_column(Boolean, index=True)


class ReconItemRow(Base):
    __tablename__ = "payments_recon_items"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(40), index=True)
    outcome: Mapped[str] = mapped_column(String(30))
    amount: Mapped[int] = mapped_column(BigInteger)
    line_keys: Mapped[str] = mapped_column(Text)
    payment_ids: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(30))
    shape: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(String(300))


class ExceptionRow(Base):
    """The finance officers' queue: reconciliation outcomes and held channel money."""

    __tablename__ = "payments_exceptions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(40))  # run id, or "channel:<name>"
    # The agency whose money it is ("" when nobody knows yet: national callers only).
    agency_code: Mapped[str] = mapped_column(String(40), index=True, default="",
                                             server_default="")
    outcome: Mapped[str] = mapped_column(String(30), index=True)
    account: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    line_keys: Mapped[str] = mapped_column(Text)
    payment_ids: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(12), index=True)
    resolution: Mapped[str] = mapped_column(String(30))
    resolved_by: Mapped[str] = mapped_column(String(200))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class OperationRow(Base):
    """Long-running operations (reconciliation runs), AIP-151."""

    __tablename__ = "payments_operations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    caller: Mapped[str] = mapped_column(String(200))
    agency_code: Mapped[str] = mapped_column(String(40), default="",
                                             server_default="")  # "" for national runs
    state: Mapped[str] = mapped_column(String(12))
    progress: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    result_json: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
