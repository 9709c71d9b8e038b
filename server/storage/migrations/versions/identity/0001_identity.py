"""Identity provider: accounts, credentials, devices, clients, keys, sessions, tokens, consents.

Revision ID: identity_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.storage.base import BigIntPK, UTCDateTime

revision = "identity_0001"
down_revision = None
branch_labels = ("identity",)
depends_on = "core_0001"


def _index(table: str, column: str) -> None:
    op.create_index(op.f(f"ix_{table}_{column}"), table, [column])


def upgrade() -> None:
    op.create_table(
        "identity_accounts",
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("identifier", sa.String(32), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("sex", sa.String(8), nullable=True),
        sa.Column("nationality", sa.String(2), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("locked_reason", sa.String(200), nullable=False),
        sa.Column("card_valid_until", sa.Date(), nullable=True),
        sa.Column("province_code", sa.String(2), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_identity_accounts")),
        sa.UniqueConstraint("identifier", name=op.f("uq_identity_accounts_identifier")),
    )
    _index("identity_accounts", "province_code")
    op.create_table(
        "identity_proofing_records",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("evidence_type", sa.String(40), nullable=False),
        sa.Column("method", sa.String(60), nullable=False),
        sa.Column("place", sa.String(200), nullable=False),
        sa.Column("officer", sa.String(100), nullable=False),
        sa.Column("proofed_at", UTCDateTime(), nullable=False),
        sa.Column("evidence_valid_until", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["identity_accounts.account_id"],
                                name=op.f("fk_identity_proofing_records_account_id_"
                                          "identity_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_proofing_records")),
    )
    _index("identity_proofing_records", "account_id")
    op.create_table(
        "identity_credentials",
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["identity_accounts.account_id"],
                                name=op.f("fk_identity_credentials_account_id_identity_accounts")),
        sa.PrimaryKeyConstraint("account_id", "kind", name=op.f("pk_identity_credentials")),
    )
    op.create_table(
        "identity_devices",
        sa.Column("device_id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=False),
        sa.Column("jkt", sa.String(64), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("registered_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["identity_accounts.account_id"],
                                name=op.f("fk_identity_devices_account_id_identity_accounts")),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_identity_devices")),
    )
    _index("identity_devices", "account_id")
    _index("identity_devices", "jkt")
    op.create_table(
        "identity_throttle",
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", UTCDateTime(), nullable=True),
        sa.Column("blocked_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_identity_throttle")),
    )
    op.create_table(
        "identity_clients",
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_identity_clients")),
    )
    op.create_table(
        "identity_signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("alg", sa.String(10), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("private_pkcs8", sa.LargeBinary(), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("activated_at", UTCDateTime(), nullable=True),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_identity_signing_keys")),
    )
    op.create_table(
        "identity_secrets",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_identity_secrets")),
    )
    op.create_table(
        "identity_sessions",
        sa.Column("sid", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(43), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("auth_time", UTCDateTime(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("methods", sa.String(100), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_identity_sessions")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_identity_sessions_key_hash")),
    )
    _index("identity_sessions", "account_id")
    op.create_table(
        "identity_session_clients",
        sa.Column("sid", sa.String(32), nullable=False),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("sub", sa.String(64), nullable=False),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sid", "client_id", name=op.f("pk_identity_session_clients")),
    )
    op.create_index("ix_identity_session_clients_subject", "identity_session_clients",
                    ["client_id", "sub"])
    op.create_table(
        "identity_artifacts",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("handle", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("kind", "handle", name=op.f("pk_identity_artifacts")),
    )
    op.create_index("ix_identity_artifacts_account", "identity_artifacts",
                    ["account_id", "kind", "status"])
    _index("identity_artifacts", "expires_at")
    op.create_table(
        "identity_replay",
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("value_hash", sa.String(43), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "value_hash", name=op.f("pk_identity_replay")),
    )
    _index("identity_replay", "expires_at")
    op.create_table(
        "identity_tokens",
        sa.Column("token_hash", sa.String(43), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("sid", sa.String(32), nullable=False),
        sa.Column("grant_id", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(300), nullable=False),
        sa.Column("claims_scope", sa.String(300), nullable=False),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column("jkt", sa.String(64), nullable=False),
        sa.Column("auth_time", UTCDateTime(), nullable=True),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("methods", sa.String(100), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_identity_tokens")),
    )
    for column in ("client_id", "account_id", "sid", "grant_id", "expires_at"):
        _index("identity_tokens", column)
    op.create_table(
        "identity_consents",
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("scopes", sa.String(300), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.Column("withdrawn_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "client_id", name=op.f("pk_identity_consents")),
    )
    op.create_table(
        "identity_logout_deliveries",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("uri", sa.String(500), nullable=False),
        sa.Column("logout_token", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_logout_deliveries")),
    )
    _index("identity_logout_deliveries", "next_attempt_at")
    op.create_table(
        "identity_idempotency",
        sa.Column("caller", sa.String(200), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("caller", "request_id", name=op.f("pk_identity_idempotency")),
    )
    _index("identity_idempotency", "created_at")
    op.create_table(
        "identity_breached_passwords",
        sa.Column("sha1", sa.LargeBinary(20), nullable=False),
        sa.PrimaryKeyConstraint("sha1", name=op.f("pk_identity_breached_passwords")),
    )


def downgrade() -> None:
    for table in ("identity_breached_passwords", "identity_idempotency",
                  "identity_logout_deliveries", "identity_consents",
                  "identity_tokens", "identity_replay", "identity_artifacts",
                  "identity_session_clients", "identity_sessions", "identity_secrets",
                  "identity_signing_keys", "identity_clients", "identity_throttle",
                  "identity_devices", "identity_credentials", "identity_proofing_records",
                  "identity_accounts"):
        op.drop_table(table)
