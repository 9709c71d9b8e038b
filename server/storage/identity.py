"""Tables of the identity provider (migrations: ``migrations/versions/identity``).

Handles given to clients and browsers (codes, tokens, request URIs, session cookies) are stored only
as SHA-256 hashes. Short-lived protocol state (pushed requests, login interactions, codes, device
approvals) shares ``identity_artifacts``, keyed by kind and handle, with its JSON in ``data``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import Base, BigIntPK, UTCDateTime

__all__ = [
    "AccountRow",
    "ArtifactRow",
    "BreachedPasswordRow",
    "ClientRow",
    "ConsentRow",
    "CredentialRow",
    "DeviceRow",
    "IdempotencyRow",
    "LogoutDeliveryRow",
    "ProofingRow",
    "ReplayRow",
    "SecretRow",
    "SessionClientRow",
    "SessionRow",
    "SigningKeyRow",
    "ThrottleRow",
    "TokenRow",
]


class AccountRow(Base):
    __tablename__ = "identity_accounts"

    account_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    identifier: Mapped[str] = mapped_column(String(32), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    date_of_birth: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    sex: Mapped[str | None] = mapped_column(String(8), nullable=True)
    nationality: Mapped[str] = mapped_column(String(2))
    level: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(16))
    locked_reason: Mapped[str] = mapped_column(String(200))
    card_valid_until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    province_code: Mapped[str] = mapped_column(String(2), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ProofingRow(Base):
    __tablename__ = "identity_proofing_records"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("identity_accounts.account_id"), index=True)
    evidence_type: Mapped[str] = mapped_column(String(40))
    method: Mapped[str] = mapped_column(String(60))
    place: Mapped[str] = mapped_column(String(200))
    officer: Mapped[str] = mapped_column(String(100))
    proofed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    evidence_valid_until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)


class CredentialRow(Base):
    __tablename__ = "identity_credentials"

    account_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("identity_accounts.account_id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "password" | "totp"
    secret: Mapped[str] = mapped_column(Text)  # argon2 encoding, or the sealed TOTP secret
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class DeviceRow(Base):
    __tablename__ = "identity_devices"

    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("identity_accounts.account_id"), index=True)
    public_jwk: Mapped[str] = mapped_column(Text)
    jkt: Mapped[str] = mapped_column(String(64), index=True)
    label: Mapped[str] = mapped_column(String(100))
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ThrottleRow(Base):
    __tablename__ = "identity_throttle"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ClientRow(Base):
    __tablename__ = "identity_clients"

    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    client_metadata: Mapped[str] = mapped_column("metadata", Text)
    disabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class SigningKeyRow(Base):
    __tablename__ = "identity_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(12))
    private_pkcs8: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    activated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SecretRow(Base):
    __tablename__ = "identity_secrets"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class SessionRow(Base):
    __tablename__ = "identity_sessions"

    sid: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(43), unique=True)
    account_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    auth_time: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    level: Mapped[int] = mapped_column(SmallInteger)
    methods: Mapped[str] = mapped_column(String(100))
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SessionClientRow(Base):
    __tablename__ = "identity_session_clients"
    __table_args__ = (Index("ix_identity_session_clients_subject", "client_id", "sub"),)

    sid: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    sub: Mapped[str] = mapped_column(String(64))
    first_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ArtifactRow(Base):
    __tablename__ = "identity_artifacts"
    __table_args__ = (Index("ix_identity_artifacts_account", "account_id", "kind", "status"),)

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    handle: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100))
    account_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16))
    data: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReplayRow(Base):
    __tablename__ = "identity_replay"

    kind: Mapped[str] = mapped_column(String(24), primary_key=True)
    value_hash: Mapped[str] = mapped_column(String(43), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


class TokenRow(Base):
    __tablename__ = "identity_tokens"

    token_hash: Mapped[str] = mapped_column(String(43), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    client_id: Mapped[str] = mapped_column(String(100), index=True)
    account_id: Mapped[str] = mapped_column(String(36), index=True)
    sid: Mapped[str] = mapped_column(String(32), index=True)
    grant_id: Mapped[str] = mapped_column(String(32), index=True)
    scope: Mapped[str] = mapped_column(String(300))
    claims_scope: Mapped[str] = mapped_column(String(300))
    offline: Mapped[bool] = mapped_column(Boolean)
    jkt: Mapped[str] = mapped_column(String(64))
    auth_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    level: Mapped[int] = mapped_column(SmallInteger)
    methods: Mapped[str] = mapped_column(String(100))
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ConsentRow(Base):
    __tablename__ = "identity_consents"

    account_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    scopes: Mapped[str] = mapped_column(String(300))
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LogoutDeliveryRow(Base):
    __tablename__ = "identity_logout_deliveries"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(100))
    uri: Mapped[str] = mapped_column(String(500))
    logout_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(String(200))


class IdempotencyRow(Base):
    __tablename__ = "identity_idempotency"

    caller: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    method: Mapped[str] = mapped_column(String(200))
    request_digest: Mapped[str] = mapped_column(String(64))
    response: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


class BreachedPasswordRow(Base):
    """SHA-1 digests of breached passwords ("Pwned Passwords" format, imported by the CLI)."""

    __tablename__ = "identity_breached_passwords"

    sha1: Mapped[bytes] = mapped_column(LargeBinary(20), primary_key=True)


class ChipChallengeRow(Base):
    __tablename__ = "identity_chip_challenges"

    challenge_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("identity_accounts.account_id"), index=True)
    device_id: Mapped[str] = mapped_column(String(32))
    nonce: Mapped[str] = mapped_column(String(64))  # hex
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ChipEvidenceRow(Base):
    __tablename__ = "identity_chip_evidence"

    evidence_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("identity_accounts.account_id"), index=True)
    verified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    genuineness: Mapped[str] = mapped_column(String(40))
    strength: Mapped[str] = mapped_column(String(8))
    sod: Mapped[bytes] = mapped_column(LargeBinary)
    ds_fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    csca_subject: Mapped[str] = mapped_column(String(400))
    data_group_hashes: Mapped[str] = mapped_column(Text)  # JSON
    claims: Mapped[str] = mapped_column(Text)  # JSON
    document_expires: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    face_match: Mapped[str] = mapped_column(String(500))
    device_id: Mapped[str] = mapped_column(String(32))
    level_raised: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str] = mapped_column(String(40))
