"""Remote signing: credentials, second factors, signature activation data.

Revision ID: documents_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.storage.base import BigIntPK, UTCDateTime

revision = "documents_0001"
down_revision = None
branch_labels = ("documents",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "documents_credentials",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("credential_id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("agency_code", sa.String(35), nullable=False),
        sa.Column("key_label", sa.String(128), nullable=False),
        sa.Column("certificates_pem", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("multisign", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents_credentials")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_documents_credentials_credential_id")),
    )
    op.create_index(op.f("ix_documents_credentials_owner"), "documents_credentials", ["owner"])
    op.create_index(op.f("ix_documents_credentials_agency_code"), "documents_credentials",
                    ["agency_code"])
    op.create_table(
        "documents_signer_factors",
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("totp_secret", sa.String(64), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_documents_signer_factors")),
    )
    op.create_table(
        "documents_sads",
        sa.Column("sad_sha256", sa.String(64), nullable=False),
        sa.Column("credential_id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("hashes", sa.Text(), nullable=False),
        sa.Column("hash_algorithm", sa.String(16), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sad_sha256", name=op.f("pk_documents_sads")),
    )
    op.create_index(op.f("ix_documents_sads_expires_at"), "documents_sads", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_documents_sads_expires_at"), table_name="documents_sads")
    op.drop_table("documents_sads")
    op.drop_table("documents_signer_factors")
    op.drop_index(op.f("ix_documents_credentials_agency_code"), table_name="documents_credentials")
    op.drop_index(op.f("ix_documents_credentials_owner"), table_name="documents_credentials")
    op.drop_table("documents_credentials")
