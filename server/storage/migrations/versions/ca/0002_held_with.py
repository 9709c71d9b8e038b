"""A certificate held with another of its renewal chain: which hold suspended it.

Revision ID: ca_0002
Revises: ca_0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ca_0002"
down_revision = "ca_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ca_certificates") as batch:
        batch.add_column(sa.Column("held_with_id", sa.BigInteger(), nullable=True))
        batch.create_foreign_key(op.f("fk_ca_certificates_held_with_id_ca_certificates"),
                                 "ca_certificates", ["held_with_id"], ["id"])
        batch.create_index(op.f("ix_ca_certificates_held_with_id"), ["held_with_id"])


def downgrade() -> None:
    with op.batch_alter_table("ca_certificates") as batch:
        batch.drop_index(op.f("ix_ca_certificates_held_with_id"))
        batch.drop_constraint(op.f("fk_ca_certificates_held_with_id_ca_certificates"),
                              type_="foreignkey")
        batch.drop_column("held_with_id")
