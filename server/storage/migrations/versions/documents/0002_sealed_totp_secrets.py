"""Room for sealed TOTP secrets (AES-GCM under the master key, base64: about 84 characters).

Revision ID: documents_0002
Revises: documents_0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "documents_0002"
down_revision = "documents_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents_signer_factors") as batch:
        batch.alter_column("totp_secret", existing_type=sa.String(64), type_=sa.String(200),
                           existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("documents_signer_factors") as batch:
        batch.alter_column("totp_secret", existing_type=sa.String(200), type_=sa.String(64),
                           existing_nullable=False)
