"""Chip proofing: the challenges the chip signs and the evidence kept from each verification.

Revision ID: identity_0002_chip_proofing
Revises: identity_0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.storage.base import UTCDateTime

revision = "identity_0002_chip_proofing"
down_revision = "identity_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_chip_challenges",
        sa.Column("challenge_id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("device_id", sa.String(32), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["identity_accounts.account_id"],
            name=op.f("fk_identity_chip_challenges_account_id_identity_accounts")),
        sa.PrimaryKeyConstraint("challenge_id", name=op.f("pk_identity_chip_challenges")),
    )
    op.create_index(op.f("ix_identity_chip_challenges_account_id"), "identity_chip_challenges",
                    ["account_id"])
    op.create_index(op.f("ix_identity_chip_challenges_expires_at"), "identity_chip_challenges",
                    ["expires_at"])
    op.create_table(
        "identity_chip_evidence",
        sa.Column("evidence_id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("verified_at", UTCDateTime(), nullable=False),
        sa.Column("genuineness", sa.String(40), nullable=False),
        sa.Column("strength", sa.String(8), nullable=False),
        sa.Column("sod", sa.LargeBinary(), nullable=False),
        sa.Column("ds_fingerprint", sa.String(64), nullable=False),
        sa.Column("csca_subject", sa.String(400), nullable=False),
        sa.Column("data_group_hashes", sa.Text(), nullable=False),
        sa.Column("claims", sa.Text(), nullable=False),
        sa.Column("document_expires", sa.Date(), nullable=True),
        sa.Column("face_match", sa.String(500), nullable=False),
        sa.Column("device_id", sa.String(32), nullable=False),
        sa.Column("level_raised", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.String(40), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["identity_accounts.account_id"],
            name=op.f("fk_identity_chip_evidence_account_id_identity_accounts")),
        sa.PrimaryKeyConstraint("evidence_id", name=op.f("pk_identity_chip_evidence")),
    )
    op.create_index(op.f("ix_identity_chip_evidence_account_id"), "identity_chip_evidence",
                    ["account_id"])
    op.create_index(op.f("ix_identity_chip_evidence_ds_fingerprint"), "identity_chip_evidence",
                    ["ds_fingerprint"])


def downgrade() -> None:
    op.drop_table("identity_chip_evidence")
    op.drop_table("identity_chip_challenges")
