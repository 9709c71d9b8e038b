"""Reconciliation exceptions and operations belong to an agency: every payments RPC acts only
within the caller's agency (national callers see all). Existing exceptions take the agency of
the payment they name, else of the collection account; operations the agency of their caller.

Revision ID: payments_0004_agency_scope
Revises: payments_0003_entry_keys
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "payments_0004_agency_scope"
down_revision = "payments_0003_entry_keys"
branch_labels = None
depends_on = None

_EXC = sa.table("payments_exceptions", sa.column("id", sa.BigInteger),
                sa.column("agency_code", sa.String), sa.column("account", sa.String),
                sa.column("payment_ids", sa.Text))
_OPS = sa.table("payments_operations", sa.column("id", sa.String),
                sa.column("agency_code", sa.String), sa.column("caller", sa.String))
_PAY = sa.table("payments_payments", sa.column("id", sa.String),
                sa.column("agency_code", sa.String))
_ACC = sa.table("payments_accounts", sa.column("agency_code", sa.String),
                sa.column("account_number", sa.String))


def upgrade() -> None:
    with op.batch_alter_table("payments_exceptions") as batch:
        batch.add_column(sa.Column("agency_code", sa.String(40), nullable=False,
                                   server_default=""))
        batch.create_index("ix_payments_exceptions_agency_code", ["agency_code"])
    with op.batch_alter_table("payments_operations") as batch:
        batch.add_column(sa.Column("agency_code", sa.String(40), nullable=False,
                                   server_default=""))
    bind = op.get_bind()
    payments = dict(bind.execute(sa.select(_PAY.c.id, _PAY.c.agency_code)).all())
    accounts = {n: a for a, n in bind.execute(sa.select(_ACC.c.agency_code,
                                                        _ACC.c.account_number)).all()}
    for row in bind.execute(sa.select(_EXC.c.id, _EXC.c.account, _EXC.c.payment_ids)).all():
        named = [payments[p] for p in (row.payment_ids or "").split() if p in payments]
        agency = named[0] if named else accounts.get(row.account or "", "")
        if agency:
            bind.execute(sa.update(_EXC).where(_EXC.c.id == row.id).values(agency_code=agency))
    for op_id, caller in bind.execute(sa.select(_OPS.c.id, _OPS.c.caller)).all():
        bind.execute(sa.update(_OPS).where(_OPS.c.id == op_id).values(
            agency_code=(caller or "").split("/", 1)[0][:40]))


def downgrade() -> None:
    with op.batch_alter_table("payments_operations") as batch:
        batch.drop_column("agency_code")
    with op.batch_alter_table("payments_exceptions") as batch:
        batch.drop_index("ix_payments_exceptions_agency_code")
        batch.drop_column("agency_code")
