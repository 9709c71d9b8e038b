"""The certificate authority's operations on the database: every operation is a request
(submitted -> approved -> completed, or rejected) whose state change, certificate and audit events
commit in one transaction.

* Permission before existence: an actor who may not manage a certificate learns nothing about it
  (PERMISSION_DENIED whether it exists or not); only a national operator is told NOT_FOUND.
* Idempotency (AIP-155): a request carrying a ``client_request_id`` already used by the same
  caller returns the first request when it is the same request, and REQUEST_ID_REUSED otherwise.
* Ordering: a transaction that revokes, holds or releases locks its issuer's row first, so the
  status log is in commit order per issuer (delta CRLs and the status refresher rely on it); a
  replaced certificate is revoked in the same transaction that creates its replacement, so nobody
  is ever left without a valid certificate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.audit import AuditEvent, append_events
from server.ca.issuance import IssuanceWriter, PreparedIssue
from server.ca.records import (
    Actor,
    CertificateView,
    RequestView,
    certificate_view,
    public_key_sha256,
    request_view,
    serial_hex,
)
from server.ca.runtime import CaRuntime
from server.notify import CERTIFICATE_STATUS, notify
from server.storage.ca import CaCertificateRow, CaIssuerRow, CaRequestRow, CaStatusLogRow
from server.storage.db import Database
from server.storage.locking import for_update, locked
from server.storage.rows import insert_missing
from signing.ca import (
    CertificateProfile,
    CertificateStatus,
    RequestKind,
    RequestState,
    RevocationEntry,
    RevocationReason,
    SubjectData,
    build_subject,
    is_parent_or_same,
    load_csr,
    new_validity,
    next_status,
    renewal_validity,
)
from signing.ca.requests import check_transition
from signing.ca.subject import SubjectLayout, SubjectNotAllowed
from signing.ca.validity import Validity
from signing.errors import (
    Conflict,
    FailedPrecondition,
    InvalidInput,
    NotFound,
    NotPermitted,
    SigningError,
)

__all__ = ["CaService", "Changes"]

_AFFILIATION_FIELDS = {"agency_code", "unit", "parent_body", "agency_name", "province_code",
                       "commune_code"}


class RequestIdReused(Conflict):
    reason = "REQUEST_ID_REUSED"


class KeyAlreadyCertified(InvalidInput):
    reason = "KEY_ALREADY_CERTIFIED"


@dataclass
class Changes:
    """What a committed transaction changed, for the in-memory index, caches and CRLs."""

    issued: list[tuple[bytes, int]] = field(default_factory=list)
    revoked: list[tuple[bytes, RevocationEntry]] = field(default_factory=list)
    released: list[tuple[bytes, int]] = field(default_factory=list)

    @property
    def status_changed(self) -> bool:
        return bool(self.revoked or self.released)

    def merge(self, other: Changes) -> None:
        self.issued += other.issued
        self.revoked += other.revoked
        self.released += other.released


def _fingerprint(**parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class CaService:
    def __init__(self, db: Database, runtime: CaRuntime, *,
                 clock: Callable[[], dt.datetime],
                 on_committed: Callable[[Changes], None] = lambda changes: None) -> None:
        self.db = db
        self.rt = runtime
        self.clock = clock
        self.on_committed = on_committed
        self._writer = IssuanceWriter(
            db, runtime.authority.key_id_hex, clock, self._event,
            lambda issued: self.on_committed(Changes(issued=issued)))

    # ------------------------------------------------------------------ set-up
    def ensure_issuer(self) -> None:
        authority = self.rt.authority
        with self.db.write() as s:
            # Replicas starting together on an empty database each try to create the row: one
            # statement that does nothing when it exists, so none of them fails.
            insert_missing(s, CaIssuerRow.__table__, {
                "key_id": authority.key_id_hex, "name": authority.name,
                "certificate": authority.certificate_der, "crl_number": 0,
                "last_full_number": 0, "last_full_seq": 0}, key=["key_id"])

    def import_certificate(self, cert: x509.Certificate, profile: CertificateProfile,
                           subject: SubjectData, managing_body: str, actor: Actor) -> bool:
        """Record a certificate this CA issued outside the service (the development PKI's server
        and client certificates). Returns False if it was already known."""
        with self.db.write() as s:
            exists = s.execute(select(CaCertificateRow.id).where(
                CaCertificateRow.issuer_key_id == self.rt.authority.key_id_hex,
                CaCertificateRow.serial_number == serial_hex(cert.serial_number))).first()
            if exists is not None:
                return False
            row = self._insert_certificate(s, cert, profile, subject, managing_body,
                                           self.clock(), None, None, 0)
            append_events(s, [self._event(actor, "certificate.import", row=row)])
        self.on_committed(Changes(issued=[(self.rt.authority.key_id, cert.serial_number)]))
        return True

    # ------------------------------------------------------------------ helpers
    def _event(self, actor: Actor, action: str, *, row: CaCertificateRow | None = None,
               request: CaRequestRow | None = None, outcome: str = "OK", reason: str = "",
               **details: str | int | bool | None) -> AuditEvent:
        info: dict[str, str | int | bool | None] = dict(details)
        if row is not None:
            info.update(certificate=f"certificates/{row.id}", serial=row.serial_number,
                        profile=row.profile, managing_body=row.managing_body)
        if request is not None:
            info.update(certificate_request=f"certificateRequests/{request.id}",
                        kind=request.kind)
        return AuditEvent(at=self.clock(), request_id=actor.request_id or "-", caller=actor.name,
                          kind="ca", action=action, outcome=outcome, reason=reason, details=info)

    def _insert_certificate(self, s: Session, cert: x509.Certificate,
                            profile: CertificateProfile, subject: SubjectData,
                            managing_body: str, now: dt.datetime, request_id: int | None,
                            predecessor_id: int | None, renewal_count: int) -> CaCertificateRow:
        row = CaCertificateRow(
            issuer_key_id=self.rt.authority.key_id_hex, serial_number=serial_hex(
                cert.serial_number), profile=profile.key,
            subject_dn=cert.subject.rfc4514_string()[:1000],
            common_name=subject.common_name[:200], agency_code=subject.agency_code,
            province_code=subject.province_code, managing_body=managing_body,
            subject_json=json.dumps(subject.as_dict(), ensure_ascii=False),
            public_key_sha256=public_key_sha256(cert),
            der=cert.public_bytes(serialization.Encoding.DER),
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
            status=CertificateStatus.VALID.value, revoked_at=None, revocation_reason=None,
            renewal_count=renewal_count, predecessor_id=predecessor_id, superseded_by_id=None,
            held_with_id=None, request_id=request_id, created_at=now)
        s.add(row)
        s.flush()
        # Other replicas learn of it at once (their mutual-TLS checks and OCSP answers).
        notify(s, CERTIFICATE_STATUS, "issue")
        return row

    def _deny(self, actor: Actor) -> SigningError:
        if actor.operator and actor.national:
            return NotFound("no such certificate", reason="CERTIFICATE_NOT_FOUND")
        return NotPermitted("the caller may not act for this certificate's managing body",
                            reason="NOT_MANAGING_BODY")

    def _visible_certificate(self, s: Session, actor: Actor, certificate_id: int, *,
                             lock: bool = False) -> CaCertificateRow:
        stmt = select(CaCertificateRow).where(CaCertificateRow.id == certificate_id)
        if lock:
            stmt = locked(stmt)
        row = s.execute(stmt).scalar_one_or_none()
        if row is None or not actor.may_manage(row.managing_body, row.province_code):
            raise self._deny(actor)
        return row

    def _lock_issuer(self, s: Session, key_id: str) -> CaIssuerRow:
        return s.execute(locked(select(CaIssuerRow).where(CaIssuerRow.key_id == key_id))
                         ).scalar_one()

    def _check_subject(self, actor: Actor, profile: CertificateProfile, subject: SubjectData,
                       managing_body: str) -> SubjectLayout:
        layout = build_subject(profile, subject)  # raises SubjectNotAllowed with the field
        if not actor.may_act_in(subject.province_code):
            raise NotPermitted("the caller may not act in this province",
                               reason="OUT_OF_JURISDICTION",
                               metadata={"province_code": subject.province_code})
        if not actor.may_manage(managing_body, subject.province_code):
            raise NotPermitted("the caller is not the managing body it names",
                               reason="NOT_MANAGING_BODY")
        # The agency code in a certificate is what relying systems (this server's mutual TLS
        # included) trust: a managing body may only certify itself and its sub-bodies.
        if subject.agency_code and not is_parent_or_same(managing_body, subject.agency_code):
            raise SubjectNotAllowed("agency_code must be the managing body or one of its "
                                    "sub-bodies", metadata={"field": "agency_code"})
        if profile.id in ("ocsp-responder", "timestamping") and not actor.operator:
            raise NotPermitted("only the CA operator may request this profile",
                               reason="OPERATOR_ONLY_PROFILE")
        return layout

    def _check_key_free(self, s: Session, key_sha256: str, *, except_id: int | None = None
                        ) -> None:
        rows = s.execute(select(CaCertificateRow.id, CaCertificateRow.status,
                                CaCertificateRow.revocation_reason).where(
            CaCertificateRow.public_key_sha256 == key_sha256)).all()
        for cid, status, reason in rows:
            if reason == RevocationReason.KEY_COMPROMISE.value:
                raise KeyAlreadyCertified("this key was reported compromised",
                                          reason="KEY_COMPROMISED")
            if cid != except_id and status != CertificateStatus.REVOKED.value:
                raise KeyAlreadyCertified("this public key is already certified; generate a new "
                                          "key pair for a new certificate")

    # ------------------------------------------------------------------ submission
    def _existing(self, s: Session, actor: Actor, client_request_id: str,
                  fingerprint: str) -> CaRequestRow | None:
        if not client_request_id:
            return None
        row = s.execute(select(CaRequestRow).where(
            CaRequestRow.requested_by == actor.name,
            CaRequestRow.client_request_id == client_request_id)).scalar_one_or_none()
        if row is not None and row.fingerprint != fingerprint:
            raise RequestIdReused("request_id was already used for a different request",
                                  metadata={"field": "request_id"})
        return row

    @staticmethod
    def _issue_fingerprint(profile: str, body: str, subject: SubjectData, csr: bytes,
                           parameters: Mapping[str, Any]) -> str:
        return _fingerprint(kind=RequestKind.ISSUE.value, profile=profile, certificate=None,
                            body=body, subject=subject.as_dict(),
                            csr=hashlib.sha256(csr).hexdigest(), parameters=dict(parameters))

    def _submit(self, actor: Actor, *, kind: RequestKind, profile: str,
                certificate_id: int | None, managing_body: str, province_code: str,
                subject: SubjectData | None, csr: bytes | None, parameters: Mapping[str, Any],
                client_request_id: str,
                precheck: Callable[[Session], None] | None = None) -> RequestView:
        fingerprint = _fingerprint(kind=kind.value, profile=profile, certificate=certificate_id,
                                   body=managing_body, subject=subject.as_dict() if subject
                                   else None, csr=hashlib.sha256(csr).hexdigest() if csr
                                   else None, parameters=dict(parameters))
        auto = self.rt.settings.auto_approve or kind in (
            RequestKind.REVOKE, RequestKind.HOLD, RequestKind.RELEASE)
        changes = Changes()
        try:
            with self.db.write() as s:
                found = self._existing(s, actor, client_request_id, fingerprint)
                if found is not None:
                    return request_view(found)
                if precheck is not None:
                    precheck(s)
                now = self.clock()
                req = CaRequestRow(
                    kind=kind.value, state=RequestState.SUBMITTED.value, profile=profile,
                    certificate_id=certificate_id, result_certificate_id=None,
                    managing_body=managing_body, province_code=province_code,
                    subject_json=json.dumps(subject.as_dict(), ensure_ascii=False)
                    if subject else "", csr=csr,
                    parameters=json.dumps(dict(parameters), sort_keys=True),
                    requested_by=actor.name, client_request_id=client_request_id or None,
                    fingerprint=fingerprint, submitted_at=now, decided_by="",
                    rejection_reason="", rejection_message="")
                s.add(req)
                s.flush()
                events = [self._event(actor, "request.submit", request=req)]
                if auto:
                    events += self._approve_and_execute(s, actor, req, changes)
                append_events(s, events)
                view = request_view(req)
        except IntegrityError:
            # Two identical requests raced on the same client_request_id: the other one won.
            with self.db.read() as s:
                found = self._existing(s, actor, client_request_id, fingerprint)
            if found is None:
                raise
            return request_view(found)
        self.on_committed(changes)
        return view

    def _approve_and_execute(self, s: Session, actor: Actor, req: CaRequestRow,
                             changes: Changes) -> list[AuditEvent]:
        now = self.clock()
        check_transition(RequestState(req.state), RequestState.APPROVED)
        req.state, req.approved_at, req.decided_by = RequestState.APPROVED.value, now, actor.name
        events = [self._event(actor, "request.approve", request=req)]
        try:
            with s.begin_nested():
                result, more = self._execute(s, actor, req, changes)
        except SigningError as exc:
            req.state, req.rejected_at = RequestState.REJECTED.value, self.clock()
            req.rejection_reason, req.rejection_message = exc.reason, exc.message[:500]
            return events + [self._event(actor, "request.reject", request=req,
                                         outcome="REJECTED", reason=exc.reason)]
        req.state, req.completed_at = RequestState.COMPLETED.value, self.clock()
        req.result_certificate_id = result.id if result is not None else None
        return events + more + [self._event(actor, "request.complete", request=req)]

    # ------------------------------------------------------------------ execution
    def _sign(self, profile: CertificateProfile, subject: SubjectData, public_key: Any,
              validity: Validity) -> x509.Certificate:
        return self.rt.authority.issue(profile, subject, public_key, validity)

    def _execute(self, s: Session, actor: Actor, req: CaRequestRow, changes: Changes
                 ) -> tuple[CaCertificateRow | None, list[AuditEvent]]:
        kind = RequestKind(req.kind)
        now = self.clock()
        params = json.loads(req.parameters)
        key_id = self.rt.authority.key_id
        if kind is RequestKind.ISSUE:
            assert req.csr is not None
            profile = self.rt.profiles.by_key(req.profile)
            subject = SubjectData.from_dict(json.loads(req.subject_json))
            csr = load_csr(req.csr)
            self._check_key_free(s, public_key_sha256(csr.public_key()))
            validity = new_validity(profile, now=now, days=params.get("validity_days"),
                                    issuer_not_after=self.rt.authority.certificate
                                    .not_valid_after_utc)
            cert = self._sign(profile, subject, csr.public_key(), validity)
            row = self._insert_certificate(s, cert, profile, subject, req.managing_body, now,
                                           req.id, None, 0)
            changes.issued.append((key_id, cert.serial_number))
            return row, [self._event(actor, "certificate.issue", row=row, request=req)]

        assert req.certificate_id is not None
        replaces_key = kind in (RequestKind.REKEY, RequestKind.MODIFY)
        revokes = kind in (RequestKind.REKEY, RequestKind.MODIFY, RequestKind.REVOKE,
                           RequestKind.HOLD, RequestKind.RELEASE)
        issuer = self.rt.authority.key_id_hex
        if revokes:
            self._lock_issuer(s, issuer)
        old = self._visible_certificate(s, actor, req.certificate_id, lock=True)
        status = CertificateStatus(old.status)

        if kind in (RequestKind.REVOKE, RequestKind.HOLD, RequestKind.RELEASE):
            reason = None if kind is RequestKind.RELEASE else RevocationReason(params["reason"])
            invalidity = params.get("invalidity_date")
            next_status(status, reason)  # refused (NOT_ON_HOLD, ...) before anything changes
            # Released with it: the rest of the hold that suspended it, checked before any change.
            released = self._hold_group(s, actor, old) if kind is RequestKind.RELEASE else []
            self._set_status(s, old, reason, now, changes,
                             dt.datetime.fromisoformat(invalidity) if invalidity else None)
            action = {RequestKind.REVOKE: "certificate.revoke", RequestKind.HOLD:
                      "certificate.hold", RequestKind.RELEASE: "certificate.release"}[kind]
            done = [self._event(actor, action, row=old, request=req,
                                reason=reason.value if reason else "")]
            if kind is RequestKind.REVOKE:
                assert reason is not None
                done += self._revoke_related(s, actor, old, reason, now, changes, req)
            elif kind is RequestKind.HOLD:
                done += self._hold_chain(s, actor, old, now, changes, req)
            for other in released:
                self._set_status(s, other, None, now, changes, None)
                done.append(self._event(actor, "certificate.release", row=other, request=req,
                                        with_certificate=f"certificates/{old.id}"))
            return None, done

        if status is not CertificateStatus.VALID or now >= old.not_after:
            raise FailedPrecondition("only a valid, unexpired certificate can be "
                                     f"{kind.value}ed", reason="CERTIFICATE_NOT_VALID",
                                     metadata={"status": old.status})
        if old.superseded_by_id is not None:
            raise FailedPrecondition("this certificate has already been replaced",
                                     reason="ALREADY_SUPERSEDED",
                                     metadata={"superseded_by":
                                               f"certificates/{old.superseded_by_id}"})
        profile = self.rt.profiles.get(old.profile.partition("@")[0])
        old_cert = x509.load_der_x509_certificate(old.der)
        old_subject = SubjectData.from_dict(json.loads(old.subject_json))
        issuer_end = self.rt.authority.certificate.not_valid_after_utc
        managing_body = old.managing_body
        renewal_count = 0
        if kind is RequestKind.RENEW:
            public_key = old_cert.public_key()
            subject = old_subject
            validity = renewal_validity(profile, now=now, not_after=old.not_after,
                                        renewals_so_far=old.renewal_count,
                                        extension_days=params.get("extension_days"),
                                        issuer_not_after=issuer_end)
            renewal_count = old.renewal_count + 1
            old_reason = None
        elif kind is RequestKind.REKEY:
            assert req.csr is not None
            csr = load_csr(req.csr)
            public_key = csr.public_key()
            if public_key_sha256(public_key) == old.public_key_sha256:
                raise InvalidInput("a re-key needs a new key pair", reason="KEY_REUSED")
            self._check_key_free(s, public_key_sha256(public_key))
            subject = old_subject
            validity = new_validity(profile, now=now, days=params.get("validity_days"),
                                    issuer_not_after=issuer_end)
            old_reason = RevocationReason.SUPERSEDED
        else:  # MODIFY
            public_key = old_cert.public_key()
            subject = SubjectData.from_dict(json.loads(req.subject_json))
            managing_body = req.managing_body
            changed = {f for f, v in subject.as_dict().items() if old_subject.as_dict().get(f)
                       != v} | {f for f in old_subject.as_dict() if f not in subject.as_dict()}
            if not changed and managing_body == old.managing_body:
                raise InvalidInput("the modification changes nothing", reason="NO_CHANGE")
            old_reason = RevocationReason(params.get("reason") or (
                RevocationReason.AFFILIATION_CHANGED.value if changed & _AFFILIATION_FIELDS
                else RevocationReason.SUPERSEDED.value))
            validity = Validity(now.replace(microsecond=0), min(old.not_after, issuer_end))
            renewal_count = old.renewal_count
        cert = self._sign(profile, subject, public_key, validity)
        new = self._insert_certificate(s, cert, profile, subject, managing_body, now, req.id,
                                       old.id, renewal_count)
        old.superseded_by_id = new.id
        changes.issued.append((self.rt.authority.key_id, cert.serial_number))
        events = [self._event(actor, f"certificate.{kind.value}", row=new, request=req,
                              predecessor=f"certificates/{old.id}")]
        if replaces_key or old_reason is not None:
            assert old_reason is not None
            self._set_status(s, old, old_reason, now, changes, None)
            events.append(self._event(actor, "certificate.revoke", row=old, request=req,
                                      reason=old_reason.value,
                                      superseded_by=f"certificates/{new.id}"))
            events += self._revoke_related(s, actor, old, old_reason, now, changes, req,
                                           superseded_by=f"certificates/{new.id}")
        return new, events

    def _revoke_related(self, s: Session, actor: Actor, row: CaCertificateRow,
                        reason: RevocationReason, now: dt.datetime, changes: Changes,
                        request: CaRequestRow | None, **details: str) -> list[AuditEvent]:
        """Revoke, with ``row``, the certificates that would otherwise outlive its revocation:
        for keyCompromise every unexpired certificate of the same key; otherwise the still-valid
        certificates ``row`` renewed (a renewal leaves the old one valid, with the same key and
        subject, so revoking only the renewal would leave its twin in use). The issuer row must
        already be locked by the transaction."""
        if reason is RevocationReason.CERTIFICATE_HOLD:
            return []
        related: list[CaCertificateRow] = []
        if reason is RevocationReason.KEY_COMPROMISE:
            related = list(s.execute(locked(select(CaCertificateRow).where(
                CaCertificateRow.public_key_sha256 == row.public_key_sha256,
                CaCertificateRow.id != row.id,
                CaCertificateRow.status.in_((CertificateStatus.VALID.value,
                                             CertificateStatus.ON_HOLD.value)),
                CaCertificateRow.not_after > now).order_by(CaCertificateRow.id))
                ).scalars().all())
        else:
            # Held ones too: released, they would be valid again with the retired key or fields.
            related = self.renewal_chain(s, row, now, newer=False)
        events = []
        for other in related:
            self._set_status(s, other, reason, now, changes, None)
            events.append(self._event(actor, "certificate.revoke", row=other, request=request,
                                      reason=reason.value, with_certificate=f"certificates/"
                                      f"{row.id}", **details))
        return events

    def renewal_chain(self, s: Session, row: CaCertificateRow, now: dt.datetime, *,
                      newer: bool = True) -> list[CaCertificateRow]:
        """The other certificates of ``row``'s renewal chain that are still valid or on hold and
        unexpired, locked: those ``row`` renewed (oldest last), then, with ``newer``, its renewals
        (newest last). A renewal keeps the key and the subject and leaves the renewed certificate
        valid, so these are one subscriber's interchangeable certificates. The walk follows the
        links both ways (``superseded_by_id`` and ``predecessor_id`` agree) and stops at a
        certificate with another key (a re-key), revoked (a modification or re-issue revokes the
        one it replaces) or expired."""
        live = (CertificateStatus.VALID.value, CertificateStatus.ON_HOLD.value)

        def fetch(certificate_id: int | None) -> CaCertificateRow | None:
            if certificate_id is None:
                return None
            return for_update(s, CaCertificateRow, certificate_id)

        def linked(other: CaCertificateRow | None, before: CaCertificateRow,
                   after: CaCertificateRow) -> bool:
            return (other is not None and before.superseded_by_id == after.id
                    and after.predecessor_id == before.id and other.status in live
                    and other.public_key_sha256 == row.public_key_sha256
                    and other.not_after > now)

        out: list[CaCertificateRow] = []
        current = row
        while True:
            before = fetch(current.predecessor_id)
            if before is None or not linked(before, before, current):
                break
            out.append(before)
            current = before
        current = row
        while newer:
            after = fetch(current.superseded_by_id)
            if after is None or not linked(after, current, after):
                break
            out.append(after)
            current = after
        return out

    def _hold_chain(self, s: Session, actor: Actor, row: CaCertificateRow, now: dt.datetime,
                    changes: Changes, request: CaRequestRow | None, **details: str
                    ) -> list[AuditEvent]:
        """Hold, with ``row`` (just put on hold), the valid certificates of its renewal chain: a
        hold suspends the subscriber's key and identity, which every one of them carries. Each is
        marked held with ``row``, so that releasing that hold releases exactly these. Ones already
        on hold in their own name stay as they are. The issuer row must already be locked."""
        events = []
        for other in self.renewal_chain(s, row, now):
            if other.status != CertificateStatus.VALID.value:
                continue
            self._set_status(s, other, RevocationReason.CERTIFICATE_HOLD, now, changes, None)
            other.held_with_id = row.id
            events.append(self._event(actor, "certificate.hold", row=other, request=request,
                                      reason=RevocationReason.CERTIFICATE_HOLD.value,
                                      with_certificate=f"certificates/{row.id}", **details))
        return events

    def _hold_group(self, s: Session, actor: Actor, row: CaCertificateRow
                    ) -> list[CaCertificateRow]:
        """What releasing ``row`` (on hold) releases with it, locked: the rest of the hold that
        suspended it — the certificate that hold named (when ``row`` was held with it) if still on
        hold, and every certificate still on hold with that one. Certificates revoked meanwhile,
        or on hold in their own name, are not part of it. The caller must be allowed to manage
        each of them (NOT_MANAGING_BODY otherwise)."""
        origin_id = row.held_with_id if row.held_with_id is not None else row.id
        group = list(s.execute(locked(select(CaCertificateRow).where(
            CaCertificateRow.held_with_id == origin_id,
            CaCertificateRow.id != row.id,
            CaCertificateRow.status == CertificateStatus.ON_HOLD.value)
            .order_by(CaCertificateRow.id))).scalars().all())
        if row.held_with_id is not None:
            origin = for_update(s, CaCertificateRow, row.held_with_id)
            if origin is not None and origin.status == CertificateStatus.ON_HOLD.value \
                    and origin.held_with_id is None:
                group.insert(0, origin)
        for other in group:
            if not actor.may_manage(other.managing_body, other.province_code):
                raise NotPermitted("the hold also suspended a certificate the caller may not "
                                   "act for", reason="NOT_MANAGING_BODY",
                                   metadata={"certificate": f"certificates/{other.id}"})
        return group

    def _set_status(self, s: Session, row: CaCertificateRow, reason: RevocationReason | None,
                    now: dt.datetime, changes: Changes,
                    invalidity_date: dt.datetime | None) -> None:
        """Revoke, hold (``reason`` certificateHold) or release (``reason`` None) ``row``; the
        issuer row must already be locked by the transaction."""
        new_status = next_status(CertificateStatus(row.status), reason)
        key_id = bytes.fromhex(row.issuer_key_id)
        serial = int(row.serial_number, 16)
        row.held_with_id = None  # a hold with another certificate is set by the caller
        if reason is None:
            row.status, row.revoked_at, row.revocation_reason = new_status.value, None, None
            changes.released.append((key_id, serial))
            action = "release"
        else:
            # Revoking a held certificate for good records the new time and reason (the hold's
            # CRL entry is replaced; RFC 5280 section 5.3.1).
            row.status, row.revoked_at = new_status.value, now
            row.revocation_reason = reason.value
            changes.revoked.append((key_id, RevocationEntry(serial, now.replace(microsecond=0),
                                                            reason, invalidity_date)))
            action = "hold" if reason is RevocationReason.CERTIFICATE_HOLD else "revoke"
        s.add(CaStatusLogRow(issuer_key_id=row.issuer_key_id, certificate_id=row.id,
                             serial_number=row.serial_number, action=action,
                             reason=reason.value if reason else None, at=now))
        # Every replica re-reads the status log when this commits (polling is the fallback).
        notify(s, CERTIFICATE_STATUS, action)

    # ------------------------------------------------------------------ public operations
    def issue(self, actor: Actor, *, profile_id: str, subject: SubjectData, csr: bytes,
              managing_body: str = "", validity_days: int | None = None,
              client_request_id: str = "") -> RequestView:
        if self.rt.settings.auto_approve:
            # The hot path: check and sign here, then write together with whatever else is
            # being issued at the same time (server.ca.issuance).
            with self._writer.preparing():
                prepared = self._prepare_issue(actor, profile_id, subject, csr, managing_body,
                                               validity_days, client_request_id)
            assert isinstance(prepared, PreparedIssue)
            return self._writer.submit(prepared)
        view = self._prepare_issue(actor, profile_id, subject, csr, managing_body,
                                   validity_days, client_request_id)
        assert isinstance(view, RequestView)
        return view

    @property
    def writer(self) -> IssuanceWriter:
        return self._writer

    def prepare_issue(self, actor: Actor, *, profile_id: str, subject: SubjectData,
                      csr: bytes, managing_body: str = "", validity_days: int | None = None,
                      client_request_id: str = "") -> PreparedIssue | RequestView:
        """Check and sign an issuance for the group commit (auto-approval), or submit it for an
        operator's approval (then the request is the result)."""
        return self._prepare_issue(actor, profile_id, subject, csr, managing_body,
                                   validity_days, client_request_id)

    def _prepare_issue(self, actor: Actor, profile_id: str, subject: SubjectData, csr: bytes,
                       managing_body: str, validity_days: int | None,
                       client_request_id: str) -> PreparedIssue | RequestView:
        profile = self.rt.profiles.get(profile_id)
        body = managing_body or actor.agency_code
        if not body:
            raise InvalidInput("managing_body is required", reason="INVALID_ARGUMENT",
                               metadata={"field": "managing_body"})
        layout = self._check_subject(actor, profile, subject, body)
        request = load_csr(csr)  # proof of possession
        profile.check_public_key(request.public_key())
        now = self.clock()
        issuer_end = self.rt.authority.certificate.not_valid_after_utc
        validity = new_validity(profile, now=now, days=validity_days, issuer_not_after=issuer_end)
        key_sha256 = public_key_sha256(request.public_key())
        params = {"validity_days": validity_days} if validity_days else {}
        if not self.rt.settings.auto_approve:
            return self._submit(actor, kind=RequestKind.ISSUE, profile=profile.key,
                                certificate_id=None, managing_body=body,
                                province_code=subject.province_code, subject=subject, csr=csr,
                                parameters=params, client_request_id=client_request_id,
                                precheck=lambda s: self._check_key_free(s, key_sha256))
        return PreparedIssue(
            actor=actor, profile=profile, subject=subject, managing_body=body, csr=csr,
            parameters=params, client_request_id=client_request_id,
            fingerprint=self._issue_fingerprint(profile.key, body, subject, csr, params),
            certificate=self.rt.authority.issue(profile, subject, request.public_key(),
                                                validity, layout=layout),
            key_sha256=key_sha256, submitted_at=now)

    def _target(self, actor: Actor, certificate_id: int) -> CertificateView:
        with self.db.read() as s:
            return certificate_view(self._visible_certificate(s, actor, certificate_id))

    def renew(self, actor: Actor, certificate_id: int, *, extension_days: int | None = None,
              client_request_id: str = "") -> RequestView:
        target = self._target(actor, certificate_id)
        params = {"extension_days": extension_days} if extension_days else {}
        return self._submit(actor, kind=RequestKind.RENEW, profile=target.profile,
                            certificate_id=target.id, managing_body=target.managing_body,
                            province_code=target.province_code, subject=None, csr=None,
                            parameters=params, client_request_id=client_request_id)

    def rekey(self, actor: Actor, certificate_id: int, *, csr: bytes,
              validity_days: int | None = None, client_request_id: str = "") -> RequestView:
        target = self._target(actor, certificate_id)
        request = load_csr(csr)
        self.rt.profiles.by_key(target.profile).check_public_key(request.public_key())
        params = {"validity_days": validity_days} if validity_days else {}
        return self._submit(actor, kind=RequestKind.REKEY, profile=target.profile,
                            certificate_id=target.id, managing_body=target.managing_body,
                            province_code=target.province_code, subject=None, csr=csr,
                            parameters=params, client_request_id=client_request_id)

    def modify(self, actor: Actor, certificate_id: int, *, changes: Mapping[str, Any],
               managing_body: str = "", reason: RevocationReason | None = None,
               client_request_id: str = "") -> RequestView:
        target = self._target(actor, certificate_id)
        if reason is not None and reason not in (RevocationReason.SUPERSEDED,
                                                 RevocationReason.AFFILIATION_CHANGED):
            raise InvalidInput("a modification revokes the old certificate as superseded or "
                               "affiliationChanged", reason="INVALID_REVOCATION_REASON")
        try:
            subject = SubjectData.from_dict({**target.subject.as_dict(), **dict(changes)})
        except TypeError:
            raise SubjectNotAllowed("malformed subject changes") from None
        profile = self.rt.profiles.get(target.profile.partition("@")[0])
        body = managing_body or target.managing_body
        self._check_subject(actor, profile, subject, body)
        params = {"reason": reason.value} if reason else {}
        return self._submit(actor, kind=RequestKind.MODIFY, profile=profile.key,
                            certificate_id=target.id, managing_body=body,
                            province_code=subject.province_code, subject=subject, csr=None,
                            parameters=params, client_request_id=client_request_id)

    def revoke(self, actor: Actor, certificate_id: int, *, reason: RevocationReason,
               invalidity_date: dt.datetime | None = None,
               client_request_id: str = "") -> RequestView:
        target = self._target(actor, certificate_id)
        kind = RequestKind.HOLD if reason is RevocationReason.CERTIFICATE_HOLD \
            else RequestKind.REVOKE
        params: dict[str, Any] = {"reason": reason.value}
        if invalidity_date is not None:
            params["invalidity_date"] = invalidity_date.astimezone(dt.UTC).isoformat()
        return self._submit(actor, kind=kind, profile=target.profile, certificate_id=target.id,
                            managing_body=target.managing_body,
                            province_code=target.province_code, subject=None, csr=None,
                            parameters=params, client_request_id=client_request_id)

    def release(self, actor: Actor, certificate_id: int, *,
                client_request_id: str = "") -> RequestView:
        target = self._target(actor, certificate_id)
        return self._submit(actor, kind=RequestKind.RELEASE, profile=target.profile,
                            certificate_id=target.id, managing_body=target.managing_body,
                            province_code=target.province_code, subject=None, csr=None,
                            parameters={}, client_request_id=client_request_id)

    # ------------------------------------------------------------------ decisions
    def _visible_request(self, s: Session, actor: Actor, request_id: int, *,
                         lock: bool = False) -> CaRequestRow:
        stmt = select(CaRequestRow).where(CaRequestRow.id == request_id)
        if lock:
            stmt = locked(stmt)
        row = s.execute(stmt).scalar_one_or_none()
        if row is None or not actor.may_manage(row.managing_body, row.province_code):
            if actor.operator and actor.national:
                raise NotFound("no such certificate request", reason="REQUEST_NOT_FOUND")
            raise NotPermitted("the caller may not see this request", reason="NOT_MANAGING_BODY")
        return row

    def approve(self, actor: Actor, request_id: int) -> RequestView:
        if not actor.operator:
            raise NotPermitted("only the CA operator approves requests", reason="NOT_OPERATOR")
        changes = Changes()
        with self.db.write() as s:
            req = self._visible_request(s, actor, request_id, lock=True)
            append_events(s, self._approve_and_execute(s, actor, req, changes))
            view = request_view(req)
        self.on_committed(changes)
        return view

    def reject(self, actor: Actor, request_id: int, message: str) -> RequestView:
        if not actor.operator:
            raise NotPermitted("only the CA operator rejects requests", reason="NOT_OPERATOR")
        with self.db.write() as s:
            req = self._visible_request(s, actor, request_id, lock=True)
            check_transition(RequestState(req.state), RequestState.REJECTED)
            req.state, req.rejected_at = RequestState.REJECTED.value, self.clock()
            req.decided_by, req.rejection_reason = actor.name, "REJECTED_BY_OPERATOR"
            req.rejection_message = message[:500]
            append_events(s, [self._event(actor, "request.reject", request=req,
                                          outcome="REJECTED", reason="REJECTED_BY_OPERATOR")])
            return request_view(req)

    # ------------------------------------------------------------------ reads
    def get_certificate(self, actor: Actor, certificate_id: int) -> CertificateView:
        return self._target(actor, certificate_id)

    def get_request(self, actor: Actor, request_id: int) -> RequestView:
        with self.db.read() as s:
            return request_view(self._visible_request(s, actor, request_id))

    def find_by_serial(self, actor: Actor, serial: int) -> CertificateView:
        with self.db.read() as s:
            row = s.execute(select(CaCertificateRow).where(
                CaCertificateRow.issuer_key_id == self.rt.authority.key_id_hex,
                CaCertificateRow.serial_number == serial_hex(serial))).scalar_one_or_none()
            if row is None or not actor.may_manage(row.managing_body, row.province_code):
                raise self._deny(actor)
            return certificate_view(row)
