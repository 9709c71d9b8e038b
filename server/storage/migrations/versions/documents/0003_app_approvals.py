"""Approvals in the citizen app: a credential's link to its owner's identity account, and the
approvals asked (with the exact hashes each one authorises).

Revision ID: documents_0003
Revises: documents_0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.storage.base import UTCDateTime

revision = "documents_0003"
down_revision = "documents_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents_credentials") as batch:
        batch.add_column(sa.Column("identity_account", sa.String(36), nullable=False,
                                   server_default=""))
    op.create_table(
        "documents_approvals",
        sa.Column("approval_sha256", sa.String(64), nullable=False),
        sa.Column("credential_id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("hashes", sa.Text(), nullable=False),
        sa.Column("hash_algorithm", sa.String(16), nullable=False),
        sa.Column("binding_message", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("approval_sha256", name=op.f("pk_documents_approvals")),
    )
    op.create_index(op.f("ix_documents_approvals_expires_at"), "documents_approvals",
                    ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_documents_approvals_expires_at"), table_name="documents_approvals")
    op.drop_table("documents_approvals")
    with op.batch_alter_table("documents_credentials") as batch:
        batch.drop_column("identity_account")
