"""Statement lines looked up by the bank's reference and end-to-end id: a channel confirmation
that arrives after a finance officer applied the bank's line for the same transfer is the same
money, found by these ids.

Revision ID: payments_0002
Revises: payments_0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "payments_0002"
down_revision = "payments_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_payments_statement_lines_bank_ref"), "payments_statement_lines",
                    ["bank_ref"], unique=False)
    op.create_index(op.f("ix_payments_statement_lines_end_to_end"), "payments_statement_lines",
                    ["end_to_end"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_payments_statement_lines_end_to_end"),
                  table_name="payments_statement_lines")
    op.drop_index(op.f("ix_payments_statement_lines_bank_ref"),
                  table_name="payments_statement_lines")
