"""Statement lines keyed by the entry, not by the bank reference alone: an entry and its
reversal, a correction or a standing transfer share a reference (``entry_key``: reference,
booking day, direction, amount). Lines stored under the bare reference get their entry key, so
re-importing an old statement adds nothing.

Revision ID: payments_0003_entry_keys
Revises: payments_0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "payments_0003_entry_keys"
down_revision = "payments_0002"
branch_labels = None
depends_on = None

_LINES = sa.table("payments_statement_lines", sa.column("id", sa.BigInteger),
                  sa.column("key", sa.String), sa.column("bank_ref", sa.String),
                  sa.column("booking_date", sa.Date), sa.column("credit", sa.Boolean),
                  sa.column("amount", sa.BigInteger))


def upgrade() -> None:
    from payments.reconcile.camt053 import entry_key

    bind = op.get_bind()
    rows = bind.execute(sa.select(_LINES.c.id, _LINES.c.bank_ref, _LINES.c.booking_date,
                                  _LINES.c.credit, _LINES.c.amount).where(
        _LINES.c.bank_ref != "", _LINES.c.key == _LINES.c.bank_ref)).all()
    for row in rows:
        bind.execute(sa.update(_LINES).where(_LINES.c.id == row.id).values(
            key=entry_key(row.bank_ref, row.booking_date, bool(row.credit),
                          int(row.amount))[:100]))


def downgrade() -> None:
    # Keys are identities; the old ones cannot all be restored (several entries may share a
    # reference now). Nothing to undo in the schema.
    pass
