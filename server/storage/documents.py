"""Tables of remote signing: officials' credentials (keys in the PKCS#11 token), their second
factor, the approvals asked of them in the citizen app, and the signature activation data (SAD)
issued and not yet used."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import Base, BigIntPK, UTCDateTime

__all__ = ["ApprovalRequestRow", "SadRow", "SignerFactorRow", "SigningCredentialRow"]


class SigningCredentialRow(Base):
    __tablename__ = "documents_credentials"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    credential_id: Mapped[str] = mapped_column(String(64), unique=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    agency_code: Mapped[str] = mapped_column(String(35), index=True)
    key_label: Mapped[str] = mapped_column(String(128))
    certificates_pem: Mapped[str] = mapped_column(Text)  # signer first
    enabled: Mapped[bool] = mapped_column(Boolean)
    description: Mapped[str] = mapped_column(String(200))
    multisign: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The owner's account at the identity provider: whose app approvals authorise this key.
    identity_account: Mapped[str] = mapped_column(String(36), default="", server_default="")


class SignerFactorRow(Base):
    """An official's TOTP secret (base32, sealed with the master key when one is configured:
    ``server.sealing``) and the last time step used (codes are single-use)."""

    __tablename__ = "documents_signer_factors"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    totp_secret: Mapped[str] = mapped_column(String(200))
    last_step: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class SadRow(Base):
    """An issued SAD, by the SHA-256 of its value (the value itself is never stored)."""

    __tablename__ = "documents_sads"

    sad_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    credential_id: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64))
    hashes: Mapped[str] = mapped_column(Text)  # hex, comma-separated
    hash_algorithm: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class ApprovalRequestRow(Base):
    """An approval asked of a credential's owner in the app, by the SHA-256 of its handle: the
    exact hashes it authorises. Deleted when it is turned into a SAD (single use)."""

    __tablename__ = "documents_approvals"

    approval_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    credential_id: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str] = mapped_column(String(36))
    hashes: Mapped[str] = mapped_column(Text)  # hex, comma-separated
    hash_algorithm: Mapped[str] = mapped_column(String(16))
    binding_message: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
