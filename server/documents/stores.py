"""SQLAlchemy adapters of the remote-signing ports (:mod:`signing.sign.remote`), on SQLite and
PostgreSQL. Issuing and using a SAD, and asking for, using or refusing an approval in the app, are
audited in the same transaction as the state change."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import CursorResult, delete, select, update

from server.audit import AuditEvent, append_events
from server.sealing import SecretBox, SecretUnavailable
from server.storage.db import Database
from server.storage.documents import (
    ApprovalRequestRow,
    SadRow,
    SignerFactorRow,
    SigningCredentialRow,
)
from signing.errors import NotFound
from signing.sign.remote import ApprovalRequest, SadRecord, SigningCredential

__all__ = ["AuditScope", "SqlApprovalRequests", "SqlCredentialStore", "SqlSadStore",
           "SqlSecondFactors", "add_credential", "link_identity_account", "set_totp_secret"]


@dataclass(frozen=True, slots=True)
class AuditScope:
    """Who is acting in the current request, for the audit events the stores write."""

    request_id: str
    caller: str
    clock: Callable[[], dt.datetime]


def _credential(row: SigningCredentialRow) -> SigningCredential:
    certs = tuple(x509.load_pem_x509_certificates(row.certificates_pem.encode()))
    return SigningCredential(credential_id=row.credential_id, owner=row.owner,
                             key_label=row.key_label, certificates=certs, enabled=row.enabled,
                             description=row.description, multisign=row.multisign,
                             identity_account=row.identity_account)


class SqlCredentialStore:
    """Credentials of one agency: the caller's. Another agency's credentials are invisible."""

    def __init__(self, db: Database, agency_code: str) -> None:
        self._db, self._agency = db, agency_code

    def credentials_of(self, owner: str) -> Sequence[SigningCredential]:
        with self._db.read() as s:
            rows = s.execute(select(SigningCredentialRow).where(
                SigningCredentialRow.owner == owner,
                SigningCredentialRow.agency_code == self._agency,
            ).order_by(SigningCredentialRow.id)).scalars().all()
        return [_credential(r) for r in rows]

    def credential(self, credential_id: str) -> SigningCredential | None:
        with self._db.read() as s:
            row = s.execute(select(SigningCredentialRow).where(
                SigningCredentialRow.credential_id == credential_id,
                SigningCredentialRow.agency_code == self._agency,
            )).scalar_one_or_none()
        return _credential(row) if row is not None else None


class SqlSadStore:
    def __init__(self, db: Database, scope: AuditScope) -> None:
        self._db, self._scope = db, scope

    def _event(self, action: str, record: SadRecord, outcome: str = "OK") -> AuditEvent:
        return AuditEvent(at=self._scope.clock(), request_id=self._scope.request_id,
                          caller=self._scope.caller, kind="documents", action=action,
                          outcome=outcome, details={"credential_id": record.credential_id,
                                                    "hashes": len(record.hashes),
                                                    "hash_algorithm": record.hash_algorithm})

    def put(self, record: SadRecord) -> None:
        with self._db.write() as s:
            s.add(SadRow(sad_sha256=record.sad_sha256.hex(), credential_id=record.credential_id,
                         owner=record.owner, hashes=",".join(sorted(h.hex() for h in record.hashes)),
                         hash_algorithm=record.hash_algorithm, expires_at=record.expires_at))
            append_events(s, [self._event("remote_signing.authorize", record)])

    def take(self, sad_sha256: bytes) -> SadRecord | None:
        key = sad_sha256.hex()
        with self._db.write() as s:
            row = s.execute(select(SadRow).where(SadRow.sad_sha256 == key)).scalar_one_or_none()
            if row is None:
                return None
            # Whoever deletes the row owns the SAD: a concurrent second use deletes nothing.
            gone = cast(CursorResult[Any], s.execute(delete(SadRow).where(SadRow.sad_sha256 == key)))
            if gone.rowcount != 1:
                return None
            record = SadRecord(sad_sha256, row.credential_id, row.owner,
                               frozenset(bytes.fromhex(h) for h in row.hashes.split(",") if h),
                               row.hash_algorithm, row.expires_at)
            append_events(s, [self._event("remote_signing.sad_used", record)])
            # expired SADs of anyone are cleared on the way
            s.execute(delete(SadRow).where(SadRow.expires_at < self._scope.clock()))
            return record


def _hashes_text(hashes: frozenset[bytes]) -> str:
    return ",".join(sorted(h.hex() for h in hashes))


def _hashes(text: str) -> frozenset[bytes]:
    return frozenset(bytes.fromhex(h) for h in text.split(",") if h)


class SqlApprovalRequests:
    """:class:`signing.sign.remote.ApprovalRequestStore`: the approvals asked in the app, with
    the exact hashes each authorises; taking one deletes it (single use)."""

    def __init__(self, db: Database, scope: AuditScope) -> None:
        self._db, self._scope = db, scope

    def _event(self, action: str, credential_id: str, outcome: str = "OK",
               **details: str | int) -> AuditEvent:
        return AuditEvent(at=self._scope.clock(), request_id=self._scope.request_id,
                          caller=self._scope.caller, kind="documents", action=action,
                          outcome=outcome, details={"credential_id": credential_id, **details})

    def put(self, request: ApprovalRequest) -> None:
        with self._db.write() as s:
            s.add(ApprovalRequestRow(
                approval_sha256=request.approval_sha256.hex(),
                credential_id=request.credential_id, owner=request.owner,
                account_id=request.account_id, hashes=_hashes_text(request.hashes),
                hash_algorithm=request.hash_algorithm, binding_message=request.binding_message,
                created_at=self._scope.clock(), expires_at=request.expires_at))
            append_events(s, [self._event("remote_signing.approval_request",
                                          request.credential_id, hashes=len(request.hashes),
                                          hash_algorithm=request.hash_algorithm)])
            # expired requests of anyone are cleared on the way
            s.execute(delete(ApprovalRequestRow).where(
                ApprovalRequestRow.expires_at < self._scope.clock() - dt.timedelta(hours=1)))

    def get(self, approval_sha256: bytes) -> ApprovalRequest | None:
        with self._db.read() as s:
            row = s.get(ApprovalRequestRow, approval_sha256.hex())
            if row is None:
                return None
            return ApprovalRequest(approval_sha256, row.credential_id, row.owner,
                                   row.account_id, _hashes(row.hashes), row.hash_algorithm,
                                   row.binding_message, row.expires_at)

    def take(self, approval_sha256: bytes) -> bool:
        key = approval_sha256.hex()
        with self._db.write() as s:
            row = s.get(ApprovalRequestRow, key)
            if row is None:
                return False
            # Whoever deletes the row owns the approval: a concurrent second use deletes nothing.
            gone = cast(CursorResult[Any], s.execute(delete(ApprovalRequestRow).where(
                ApprovalRequestRow.approval_sha256 == key)))
            if gone.rowcount != 1:
                return False
            append_events(s, [self._event("remote_signing.approval_closed", row.credential_id)])
            return True

    def refused(self, credential_id: str, reason: str) -> None:
        with self._db.write() as s:
            append_events(s, [self._event("remote_signing.approval_refused", credential_id,
                                          outcome=reason)])


def _totp_context(owner: str) -> str:
    return f"documents/totp/{owner}"


class SqlSecondFactors:
    """TOTP secrets (sealed at rest with the master key when one is configured) and the
    single-use rule (the last time step used per official)."""

    def __init__(self, db: Database, box: SecretBox | None = None) -> None:
        self._db = db
        self._box = box

    def secret_of(self, owner: str) -> str | None:
        with self._db.read() as s:
            row = s.get(SignerFactorRow, owner)
            stored = row.totp_secret if row is not None else None
        if stored is None or not SecretBox.is_sealed_text(stored):
            return stored
        if self._box is None:
            raise SecretUnavailable("TOTP secrets are sealed and no master key is configured")
        return self._box.open_text(stored, _totp_context(owner))

    def claim(self, owner: str, step: int) -> bool:
        with self._db.write() as s:
            done = cast(CursorResult[Any], s.execute(update(SignerFactorRow).where(
                SignerFactorRow.owner == owner, SignerFactorRow.last_step < step,
            ).values(last_step=step, updated_at=dt.datetime.now(dt.UTC))))
            return bool(done.rowcount == 1)


def add_credential(db: Database, credential: SigningCredential, agency_code: str, *,
                   at: dt.datetime, actor: str) -> None:
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode()
                  for c in credential.certificates)
    with db.write() as s:
        s.add(SigningCredentialRow(
            credential_id=credential.credential_id, owner=credential.owner,
            agency_code=agency_code, key_label=credential.key_label, certificates_pem=pem,
            enabled=credential.enabled, description=credential.description,
            multisign=credential.multisign, created_at=at,
            identity_account=credential.identity_account))
        append_events(s, [AuditEvent(at=at, request_id="cli", caller=actor, kind="documents",
                                     action="remote_signing.credential_add", outcome="OK",
                                     details={"credential_id": credential.credential_id,
                                              "agency_code": agency_code,
                                              "identity_account": credential.identity_account})])


def link_identity_account(db: Database, credential_id: str, account_id: str, *,
                          at: dt.datetime, actor: str) -> None:
    """Link a credential to its owner's identity account: that account's approvals in the app
    then authorise the credential's signatures."""
    with db.write() as s:
        done = cast(CursorResult[Any], s.execute(update(SigningCredentialRow).where(
            SigningCredentialRow.credential_id == credential_id).values(
                identity_account=account_id)))
        if done.rowcount != 1:
            raise NotFound("no such credential", reason="CREDENTIAL_NOT_FOUND")
        append_events(s, [AuditEvent(at=at, request_id="cli", caller=actor, kind="documents",
                                     action="remote_signing.credential_link", outcome="OK",
                                     details={"credential_id": credential_id,
                                              "identity_account": account_id})])


def set_totp_secret(db: Database, owner: str, secret: str, *, at: dt.datetime,
                    actor: str, box: SecretBox | None = None) -> None:
    if box is not None:
        secret = box.seal_text(secret, _totp_context(owner))
    with db.write() as s:
        row = s.get(SignerFactorRow, owner)
        if row is None:
            s.add(SignerFactorRow(owner=owner, totp_secret=secret, last_step=-1, updated_at=at))
        else:
            row.totp_secret, row.last_step, row.updated_at = secret, -1, at
        append_events(s, [AuditEvent(at=at, request_id="cli", caller=actor, kind="documents",
                                     action="remote_signing.second_factor_set", outcome="OK",
                                     details={})])
