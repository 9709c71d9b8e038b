"""The signed QR of each receipt (a compact JWS by the collecting body's seal, format BL1 in
docs/payments.md), made when the receipt is issued and printed on its PDF. Receipts issued before
this column keep the older unsigned QR (a lookup URL with the XML's digest).

Revision ID: payments_0003_receipt_qr
Revises: payments_0004_agency_scope
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "payments_0003_receipt_qr"
down_revision = "payments_0004_agency_scope"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments_receipts") as batch:
        batch.add_column(sa.Column("qr_token", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments_receipts") as batch:
        batch.drop_column("qr_token")
