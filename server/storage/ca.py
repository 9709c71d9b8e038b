"""Tables of the certificate authority.

* ``ca_issuers``: one row per CA this server signs for; its CRL number counter, and the row that
  status changes and CRL generation lock, so CRL numbers and the status log are in commit order.
* ``ca_certificates``: every issued certificate, its subscriber data, status and links
  (``predecessor_id`` -> the certificate it replaced; ``superseded_by_id`` -> its replacement;
  ``held_with_id`` -> the certificate whose hold also suspended it).
* ``ca_requests``: every operation as a request with its state and timestamps.
* ``ca_status_log``: revocations, holds and releases in order (delta CRLs and cache refresh).
* ``ca_crls``: the CRLs generated, newest served.
* ``ca_reorganisations`` / ``ca_reorganisation_items``: bulk re-issuance runs and their items.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import Base, BigIntPK, UTCDateTime

__all__ = [
    "CaCertificateRow",
    "CaCrlRow",
    "CaIssuerRow",
    "CaReorganisationItemRow",
    "CaReorganisationRow",
    "CaRequestRow",
    "CaStatusLogRow",
]


class CaIssuerRow(Base):
    __tablename__ = "ca_issuers"

    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)  # hex SKI
    name: Mapped[str] = mapped_column(String(64))
    certificate: Mapped[bytes] = mapped_column(LargeBinary)
    # Last CRL number used (full and delta CRLs share one sequence, RFC 5280 5.2.3).
    crl_number: Mapped[int] = mapped_column(BigInteger, default=0)
    last_full_number: Mapped[int] = mapped_column(BigInteger, default=0)
    # ca_status_log.seq covered by the last full CRL (a delta lists what comes after).
    last_full_seq: Mapped[int] = mapped_column(BigInteger, default=0)


class CaCertificateRow(Base):
    __tablename__ = "ca_certificates"
    __table_args__ = (UniqueConstraint("issuer_key_id", "serial_number"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    issuer_key_id: Mapped[str] = mapped_column(String(40), ForeignKey("ca_issuers.key_id"))
    serial_number: Mapped[str] = mapped_column(String(42))  # lower-case hex
    profile: Mapped[str] = mapped_column(String(64))  # "individual@1"
    subject_dn: Mapped[str] = mapped_column(String(1000))
    common_name: Mapped[str] = mapped_column(String(200), index=True)
    agency_code: Mapped[str] = mapped_column(String(35), index=True)
    province_code: Mapped[str] = mapped_column(String(2), index=True)
    managing_body: Mapped[str] = mapped_column(String(35), index=True)
    subject_json: Mapped[str] = mapped_column(Text)
    public_key_sha256: Mapped[str] = mapped_column(String(64), index=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    renewal_count: Mapped[int] = mapped_column(Integer, default=0)
    predecessor_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ca_certificates.id"), nullable=True, index=True)
    superseded_by_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ca_certificates.id"), nullable=True)
    # On hold because the hold of this other certificate of its renewal chain suspended it too
    # (released with that hold); None for a certificate held in its own name, or not held.
    held_with_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ca_certificates.id"), nullable=True, index=True)
    request_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class CaRequestRow(Base):
    __tablename__ = "ca_requests"
    __table_args__ = (UniqueConstraint("requested_by", "client_request_id"),
                      Index("ix_ca_requests_state_kind", "state", "kind"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    profile: Mapped[str] = mapped_column(String(64))
    certificate_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ca_certificates.id"), nullable=True, index=True)
    result_certificate_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ca_certificates.id"), nullable=True)
    managing_body: Mapped[str] = mapped_column(String(35), index=True)
    province_code: Mapped[str] = mapped_column(String(2))
    subject_json: Mapped[str] = mapped_column(Text)
    csr: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    parameters: Mapped[str] = mapped_column(Text)  # JSON: validity, reason, ...
    requested_by: Mapped[str] = mapped_column(String(200))
    client_request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # what the client_request_id stands for
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rejected_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str] = mapped_column(String(200))
    rejection_reason: Mapped[str] = mapped_column(String(100))
    rejection_message: Mapped[str] = mapped_column(String(500))


class CaStatusLogRow(Base):
    __tablename__ = "ca_status_log"
    __table_args__ = (Index("ix_ca_status_log_issuer_seq", "issuer_key_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    issuer_key_id: Mapped[str] = mapped_column(String(40))
    certificate_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ca_certificates.id"))
    serial_number: Mapped[str] = mapped_column(String(42))
    action: Mapped[str] = mapped_column(String(16))  # revoke | hold | release
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class CaCrlRow(Base):
    __tablename__ = "ca_crls"
    __table_args__ = (UniqueConstraint("issuer_key_id", "number"),
                      Index("ix_ca_crls_issuer_delta", "issuer_key_id", "is_delta", "number"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    issuer_key_id: Mapped[str] = mapped_column(String(40), ForeignKey("ca_issuers.key_id"))
    number: Mapped[int] = mapped_column(BigInteger)
    is_delta: Mapped[bool] = mapped_column(Boolean)
    base_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    this_update: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)


class CaReorganisationRow(Base):
    __tablename__ = "ca_reorganisations"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    reference: Mapped[str] = mapped_column(String(200))
    mapping_json: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)  # running | succeeded | failed
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CaReorganisationItemRow(Base):
    __tablename__ = "ca_reorganisation_items"
    __table_args__ = (UniqueConstraint("reorganisation_id", "certificate_id"),
                      Index("ix_ca_reorganisation_items_run_state", "reorganisation_id",
                            "state"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    reorganisation_id: Mapped[int] = mapped_column(BigInteger,
                                                   ForeignKey("ca_reorganisations.id"))
    certificate_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ca_certificates.id"))
    action: Mapped[str] = mapped_column(String(16))  # reissue | reassign
    new_subject_json: Mapped[str] = mapped_column(Text)
    new_managing_body: Mapped[str] = mapped_column(String(35))
    # pending -> issued (new certificate exists, old not yet revoked) -> done; or failed
    state: Mapped[str] = mapped_column(String(16))
    new_certificate_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ca_certificates.id"), nullable=True)
    error: Mapped[str] = mapped_column(String(300))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
