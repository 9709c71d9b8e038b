"""Payments: collection accounts, payments and their transitions, idempotency, channel events,
refunds, the ledger, the outbox, receipts and their numbering, tax submissions, statements,
reconciliation items, the exceptions queue and long-running operations.

Revision ID: payments_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.storage.base import BigIntPK, UTCDateTime

revision = "payments_0001"
down_revision = None
branch_labels = ("payments",)
depends_on = "core_0001"

# Append-only tables: corrections are new rows (reversing entries, replacement receipts).
APPEND_ONLY = ("payments_ledger_transactions", "payments_ledger_postings", "payments_receipts")


def _append_only_triggers() -> None:
    bind = op.get_bind()
    for table in APPEND_ONLY:
        if bind.dialect.name == "postgresql":
            op.execute(f"""
                CREATE FUNCTION {table}_append_only() RETURNS trigger AS $$
                BEGIN RAISE EXCEPTION '{table} is append-only'; END $$ LANGUAGE plpgsql""")
            op.execute(f"""
                CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION {table}_append_only()""")
        else:
            for action in ("UPDATE", "DELETE"):
                op.execute(f"""
                    CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}
                    BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""")


def _drop_triggers() -> None:
    bind = op.get_bind()
    for table in APPEND_ONLY:
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")


def upgrade() -> None:
    op.create_table(
        "payments_accounts",
        sa.Column("agency_code", sa.String(length=40), nullable=False),
        sa.Column("bank_bin", sa.String(length=6), nullable=False),
        sa.Column("account_number", sa.String(length=19), nullable=False),
        sa.Column("account_name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("treasury_office_code", sa.String(length=4), nullable=False),
        sa.Column("budget_unit_code", sa.String(length=7), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("agency_code", name=op.f("pk_payments_accounts")),
    )
    op.create_table(
        "payments_channel_events",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("transaction_id", sa.String(length=80), nullable=False),
        sa.Column("reference", sa.String(length=80), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_channel_events")),
        sa.UniqueConstraint(
            "channel",
            "transaction_id",
            name=op.f("uq_payments_channel_events_channel_transaction_id"),
        ),
    )
    op.create_index(
        op.f("ix_payments_channel_events_payment_id"),
        "payments_channel_events",
        ["payment_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_payments_channel_events_reference"),
        "payments_channel_events",
        ["reference"],
        unique=False,
    )
    op.create_table(
        "payments_exceptions",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=30), nullable=False),
        sa.Column("account", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("line_keys", sa.Text(), nullable=False),
        sa.Column("payment_ids", sa.Text(), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("resolution", sa.String(length=30), nullable=False),
        sa.Column("resolved_by", sa.String(length=200), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_exceptions")),
    )
    op.create_index(
        op.f("ix_payments_exceptions_outcome"), "payments_exceptions", ["outcome"], unique=False
    )
    op.create_index(
        op.f("ix_payments_exceptions_state"), "payments_exceptions", ["state"], unique=False
    )
    op.create_table(
        "payments_idempotency",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("caller", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=100), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("result", sa.String(length=200), nullable=False),
        sa.Column("error_class", sa.String(length=100), nullable=False),
        sa.Column("error_reason", sa.String(length=100), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_idempotency")),
        sa.UniqueConstraint(
            "caller",
            "method",
            "request_id",
            name=op.f("uq_payments_idempotency_caller_method_request_id"),
        ),
    )
    op.create_table(
        "payments_ledger_transactions",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("memo", sa.String(length=300), nullable=False),
        sa.Column("reverses", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_ledger_transactions")),
        sa.UniqueConstraint("key", name=op.f("uq_payments_ledger_transactions_key")),
    )
    op.create_index(
        op.f("ix_payments_ledger_transactions_payment_id"),
        "payments_ledger_transactions",
        ["payment_id"],
        unique=False,
    )
    op.create_table(
        "payments_operations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("caller", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("result_json", sa.Text(), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_operations")),
    )
    op.create_table(
        "payments_outbox",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("ref", sa.String(length=120), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_outbox")),
        sa.UniqueConstraint("kind", "ref", name=op.f("uq_payments_outbox_kind_ref")),
    )
    op.create_index(
        "ix_payments_outbox_state_next",
        "payments_outbox",
        ["state", "next_attempt_at"],
        unique=False,
    )
    op.create_table(
        "payments_payments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("agency_code", sa.String(length=40), nullable=False),
        sa.Column("province_code", sa.String(length=2), nullable=False),
        sa.Column("procedure_code", sa.String(length=60), nullable=False),
        sa.Column("dossier_code", sa.String(length=80), nullable=False),
        sa.Column("payer_json", sa.Text(), nullable=False),
        sa.Column("lines_json", sa.Text(), nullable=False),
        sa.Column("reference", sa.String(length=25), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("collected", sa.BigInteger(), nullable=False),
        sa.Column("refunded", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("settled", sa.BigInteger(), nullable=False),
        sa.Column("line_refunded_json", sa.Text(), nullable=False),
        sa.Column("channel_url", sa.Text(), nullable=False),
        sa.Column("dossier_key", sa.String(length=130), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("paid_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_payments")),
        sa.UniqueConstraint("dossier_key", name=op.f("uq_payments_payments_dossier_key")),
        sa.UniqueConstraint("reference", name=op.f("uq_payments_payments_reference")),
    )
    op.create_index(
        op.f("ix_payments_payments_agency_code"), "payments_payments", ["agency_code"], unique=False
    )
    op.create_index(
        op.f("ix_payments_payments_created_at"), "payments_payments", ["created_at"], unique=False
    )
    op.create_index(
        "ix_payments_payments_state_expires",
        "payments_payments",
        ["state", "expires_at"],
        unique=False,
    )
    op.create_table(
        "payments_receipt_counters",
        sa.Column("template", sa.String(length=5), nullable=False),
        sa.Column("series", sa.String(length=3), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "template", "series", "year", name=op.f("pk_payments_receipt_counters")
        ),
    )
    op.create_table(
        "payments_recon_items",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=30), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("line_keys", sa.Text(), nullable=False),
        sa.Column("payment_ids", sa.Text(), nullable=False),
        sa.Column("method", sa.String(length=30), nullable=False),
        sa.Column("shape", sa.String(length=20), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_recon_items")),
    )
    op.create_index(
        op.f("ix_payments_recon_items_run_id"), "payments_recon_items", ["run_id"], unique=False
    )
    op.create_table(
        "payments_statements",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=40), nullable=False),
        sa.Column("statement_id", sa.String(length=80), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("from_date", sa.Date(), nullable=True),
        sa.Column("to_date", sa.Date(), nullable=True),
        sa.Column("opening", sa.BigInteger(), nullable=True),
        sa.Column("closing", sa.BigInteger(), nullable=True),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("new_lines", sa.Integer(), nullable=False),
        sa.Column("imported_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_statements")),
    )
    op.create_index(
        op.f("ix_payments_statements_account"), "payments_statements", ["account"], unique=False
    )
    op.create_table(
        "payments_tax_submissions",
        sa.Column("message_id", sa.String(length=80), nullable=False),
        sa.Column("document_id", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("ack_id", sa.String(length=80), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_payments_tax_submissions")),
    )
    op.create_index(
        op.f("ix_payments_tax_submissions_document_id"),
        "payments_tax_submissions",
        ["document_id"],
        unique=False,
    )
    op.create_table(
        "payments_ledger_postings",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("transaction_id", BigIntPK, nullable=False),
        sa.Column("account", sa.String(length=120), nullable=False),
        sa.Column("debit", sa.BigInteger(), nullable=False),
        sa.Column("credit", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["payments_ledger_transactions.id"],
            name=op.f("fk_payments_ledger_postings_transaction_id_payments_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_ledger_postings")),
    )
    op.create_index(
        op.f("ix_payments_ledger_postings_account"),
        "payments_ledger_postings",
        ["account"],
        unique=False,
    )
    op.create_index(
        op.f("ix_payments_ledger_postings_transaction_id"),
        "payments_ledger_postings",
        ["transaction_id"],
        unique=False,
    )
    op.create_table(
        "payments_receipts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("collector", sa.String(length=40), nullable=False),
        sa.Column("template", sa.String(length=5), nullable=False),
        sa.Column("series", sa.String(length=3), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("original_key", sa.String(length=100), nullable=True),
        sa.Column("related_id", sa.String(length=40), nullable=True),
        sa.Column("xml", sa.LargeBinary(), nullable=False),
        sa.Column("xml_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments_payments.id"],
            name=op.f("fk_payments_receipts_payment_id_payments_payments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_receipts")),
        sa.UniqueConstraint("original_key", name=op.f("uq_payments_receipts_original_key")),
        sa.UniqueConstraint(
            "template",
            "series",
            "year",
            "number",
            name=op.f("uq_payments_receipts_template_series_year_number"),
        ),
    )
    op.create_index(
        op.f("ix_payments_receipts_issued_at"), "payments_receipts", ["issued_at"], unique=False
    )
    op.create_index(
        op.f("ix_payments_receipts_payment_id"), "payments_receipts", ["payment_id"], unique=False
    )
    op.create_index(
        op.f("ix_payments_receipts_related_id"), "payments_receipts", ["related_id"], unique=False
    )
    op.create_table(
        "payments_refunds",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments_payments.id"],
            name=op.f("fk_payments_refunds_payment_id_payments_payments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_refunds")),
    )
    op.create_index(
        op.f("ix_payments_refunds_payment_id"), "payments_refunds", ["payment_id"], unique=False
    )
    op.create_table(
        "payments_statement_lines",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("statement_id", BigIntPK, nullable=False),
        sa.Column("account", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("credit", sa.Boolean(), nullable=False),
        sa.Column("booking_date", sa.Date(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=True),
        sa.Column("bank_ref", sa.String(length=100), nullable=False),
        sa.Column("end_to_end", sa.String(length=100), nullable=False),
        sa.Column("remittance", sa.String(length=500), nullable=False),
        sa.Column("counterparty", sa.String(length=200), nullable=False),
        sa.Column("counter_account", sa.String(length=40), nullable=False),
        sa.Column("reconciled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["statement_id"],
            ["payments_statements.id"],
            name=op.f("fk_payments_statement_lines_statement_id_payments_statements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_statement_lines")),
        sa.UniqueConstraint("account", "key", name=op.f("uq_payments_statement_lines_account_key")),
    )
    op.create_index(
        op.f("ix_payments_statement_lines_booking_date"),
        "payments_statement_lines",
        ["booking_date"],
        unique=False,
    )
    op.create_index(
        op.f("ix_payments_statement_lines_reconciled"),
        "payments_statement_lines",
        ["reconciled"],
        unique=False,
    )
    op.create_index(
        op.f("ix_payments_statement_lines_statement_id"),
        "payments_statement_lines",
        ["statement_id"],
        unique=False,
    )
    op.create_table(
        "payments_transitions",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("from_state", sa.String(length=24), nullable=False),
        sa.Column("to_state", sa.String(length=24), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments_payments.id"],
            name=op.f("fk_payments_transitions_payment_id_payments_payments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_transitions")),
    )
    op.create_index(
        op.f("ix_payments_transitions_payment_id"),
        "payments_transitions",
        ["payment_id"],
        unique=False,
    )
    op.create_table(
        "payments_receipt_cancellations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("receipt_id", sa.String(length=40), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("xml", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["receipt_id"],
            ["payments_receipts.id"],
            name=op.f("fk_payments_receipt_cancellations_receipt_id_payments_receipts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_receipt_cancellations")),
        sa.UniqueConstraint(
            "receipt_id", name=op.f("uq_payments_receipt_cancellations_receipt_id")
        ),
    )

    _append_only_triggers()


def downgrade() -> None:
    _drop_triggers()
    op.drop_table("payments_receipt_cancellations")
    op.drop_table("payments_transitions")
    op.drop_table("payments_statement_lines")
    op.drop_table("payments_refunds")
    op.drop_table("payments_receipts")
    op.drop_table("payments_ledger_postings")
    op.drop_table("payments_tax_submissions")
    op.drop_table("payments_statements")
    op.drop_table("payments_recon_items")
    op.drop_table("payments_receipt_counters")
    op.drop_table("payments_payments")
    op.drop_table("payments_outbox")
    op.drop_table("payments_operations")
    op.drop_table("payments_ledger_transactions")
    op.drop_table("payments_idempotency")
    op.drop_table("payments_exceptions")
    op.drop_table("payments_channel_events")
    op.drop_table("payments_accounts")
