"""Bulk re-issuance after a reorganisation: plan, create a run, carry it out in batches.

A run is created once per mapping (its digest is unique): its items — one per certificate that
must change — are fixed when it is created. Carrying out an item is one step: issue the new
certificate, link it, revoke the old one (affiliationChanged) with the certificates it renewed,
and mark the item done, all in the transaction of its batch. A certificate on hold is carried out
too: its replacement is issued on hold, so nothing naming the old unit can be released back.
So a run killed at any point has either done an item completely or not at all, and running it
again picks up the items still pending: nothing is issued twice and nobody is left without a
valid certificate.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from server.audit import AuditEvent, append_events
from server.ca.records import Actor, certificate_view
from server.ca.service import CaService, Changes
from server.storage.ca import (
    CaCertificateRow,
    CaReorganisationItemRow,
    CaReorganisationRow,
    CaRequestRow,
)
from server.storage.locking import locked
from signing.ca import (
    CertificateStatus,
    PlanAction,
    PlannedChange,
    Reorganisation,
    RequestKind,
    RequestState,
    RevocationReason,
    SubjectData,
    plan,
)
from signing.ca.validity import Validity
from signing.errors import InvalidInput, NotFound, NotPermitted, SigningError

__all__ = ["ReorganisationRunner", "RunStatus"]


@dataclass(frozen=True, slots=True)
class RunStatus:
    id: int
    reference: str
    state: str  # running | succeeded | failed
    total: int
    done: int
    failed: int
    created_at: dt.datetime
    finished_at: dt.datetime | None

    @property
    def name(self) -> str:
        return f"reorganizationOperations/{self.id}"

    @property
    def finished(self) -> bool:
        return self.state != "running"


def _status(row: CaReorganisationRow) -> RunStatus:
    return RunStatus(row.id, row.reference, row.state, row.total, row.done, row.failed,
                     row.created_at, row.finished_at)


class ReorganisationRunner:
    def __init__(self, service: CaService) -> None:
        self.service = service
        self.db = service.db
        self.rt = service.rt

    @staticmethod
    def _require_operator(actor: Actor) -> None:
        if not actor.operator:
            raise NotPermitted("only the CA operator runs reorganisations",
                               reason="NOT_OPERATOR")

    def plan(self, actor: Actor, reorganisation: Reorganisation) -> list[PlannedChange]:
        """Every change the mapping requires among the certificates the actor may manage."""
        self._require_operator(actor)
        olds = [c.old_agency_code for c in reorganisation.changes]
        now = self.service.clock()
        facts = []
        after = 0
        while True:
            with self.db.read() as s:
                rows = s.execute(select(CaCertificateRow).where(
                    CaCertificateRow.id > after,
                    CaCertificateRow.status.in_((CertificateStatus.VALID.value,
                                                 CertificateStatus.ON_HOLD.value)),
                    CaCertificateRow.not_after > now,
                    or_(CaCertificateRow.agency_code.in_(olds),
                        CaCertificateRow.managing_body.in_(olds)))
                    .order_by(CaCertificateRow.id).limit(5000)).scalars().all()
            if not rows:
                break
            after = rows[-1].id
            facts += [certificate_view(r).facts(self.rt.profiles, now) for r in rows
                      if actor.may_manage(r.managing_body, r.province_code)]
        return plan(reorganisation, facts)

    def create(self, actor: Actor, reorganisation: Reorganisation) -> RunStatus:
        """The run for this mapping, created with its items if it does not exist yet."""
        self._require_operator(actor)
        digest = reorganisation.digest()
        with self.db.read() as s:
            existing = s.execute(select(CaReorganisationRow).where(
                CaReorganisationRow.digest == digest)).scalar_one_or_none()
        if existing is not None:
            return _status(existing)
        changes = self.plan(actor, reorganisation)
        now = self.service.clock()
        with self.db.write() as s:
            existing = s.execute(select(CaReorganisationRow).where(
                CaReorganisationRow.digest == digest)).scalar_one_or_none()
            if existing is not None:
                return _status(existing)
            run = CaReorganisationRow(
                digest=digest, reference=reorganisation.reference[:200],
                mapping_json=json.dumps(reorganisation.to_dict(), ensure_ascii=False),
                state="running" if changes else "succeeded", total=len(changes), done=0,
                failed=0, created_by=actor.name, created_at=now,
                finished_at=None if changes else now)
            s.add(run)
            s.flush()
            s.add_all(CaReorganisationItemRow(
                reorganisation_id=run.id, certificate_id=c.certificate_id,
                action=c.action.value,
                new_subject_json=json.dumps(c.new_subject.as_dict(), ensure_ascii=False),
                new_managing_body=c.new_managing_body, state="pending", new_certificate_id=None,
                error="", updated_at=now) for c in changes)
            append_events(s, [self.service._event(actor, "reorganisation.create",
                                                  reorganisation=f"reorganizationOperations/"
                                                                 f"{run.id}",
                                                  items=len(changes), digest=digest)])
            return _status(run)

    def status(self, run_id: int) -> RunStatus:
        with self.db.read() as s:
            row = s.get(CaReorganisationRow, run_id)
        if row is None:
            raise NotFound("no such reorganisation run", reason="REORGANISATION_NOT_FOUND")
        return _status(row)

    def items(self, run_id: int, *, after_id: int, size: int
              ) -> list[CaReorganisationItemRow]:
        with self.db.read() as s:
            return list(s.execute(select(CaReorganisationItemRow).where(
                CaReorganisationItemRow.reorganisation_id == run_id,
                CaReorganisationItemRow.id > after_id)
                .order_by(CaReorganisationItemRow.id).limit(size + 1)).scalars().all())

    def unfinished(self) -> list[int]:
        with self.db.read() as s:
            return list(s.execute(select(CaReorganisationRow.id).where(
                CaReorganisationRow.state == "running")).scalars().all())

    # ------------------------------------------------------------------ running
    def run(self, actor: Actor, run_id: int, *, batch_size: int | None = None,
            progress: Callable[[RunStatus], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False, throttle: float = 0.0) -> RunStatus:
        """Carry out the pending items in batches until none is left (or ``should_stop``)."""
        self._require_operator(actor)
        size = batch_size or self.rt.settings.reorganisation_batch_size
        status = self.status(run_id)
        if progress is not None:
            progress(status)
        while not status.finished and not should_stop():
            more, status = self._batch(actor, run_id, size)
            if progress is not None:
                progress(status)
            if not more:
                break
            if throttle:
                time.sleep(throttle)
        return status

    def _batch(self, actor: Actor, run_id: int, size: int) -> tuple[bool, RunStatus]:
        changes = Changes()
        with self.db.write() as s:
            run = s.execute(locked(select(CaReorganisationRow).where(
                CaReorganisationRow.id == run_id))).scalar_one()
            items = s.execute(locked(select(CaReorganisationItemRow).where(
                CaReorganisationItemRow.reorganisation_id == run_id,
                CaReorganisationItemRow.state == "pending")
                .order_by(CaReorganisationItemRow.id).limit(size), skip_locked=True)
            ).scalars().all()
            if items and any(i.action == PlanAction.REISSUE.value for i in items):
                self.service._lock_issuer(s, self.rt.authority.key_id_hex)
            events: list[AuditEvent] = []
            for item in items:
                try:
                    with s.begin_nested():
                        events += self._item(s, actor, run, item, changes)
                    item.state = "done"
                    run.done += 1
                except SigningError as exc:
                    item.state, item.error = "failed", f"{exc.reason}: {exc.message}"[:300]
                    run.failed += 1
                item.updated_at = self.service.clock()
            remaining = s.execute(select(func.count()).select_from(CaReorganisationItemRow)
                                  .where(CaReorganisationItemRow.reorganisation_id == run_id,
                                         CaReorganisationItemRow.state == "pending")
                                  ).scalar_one()
            if remaining == 0 and run.state == "running":
                run.state = "failed" if run.failed else "succeeded"
                run.finished_at = self.service.clock()
                events.append(self.service._event(
                    actor, "reorganisation.finish", reorganisation=f"reorganizationOperations/"
                    f"{run.id}", done=run.done, failed=run.failed,
                    outcome="OK" if not run.failed else "FAILED"))
            if events:
                append_events(s, events)
            status = _status(run)
        self.service.on_committed(changes)
        return bool(items) and remaining > 0, status

    def _item(self, s: Session, actor: Actor, run: CaReorganisationRow,
              item: CaReorganisationItemRow, changes: Changes) -> list[AuditEvent]:
        service = self.service
        old = s.execute(locked(select(CaCertificateRow).where(
            CaCertificateRow.id == item.certificate_id))).scalar_one()
        now = service.clock()
        held = old.status == CertificateStatus.ON_HOLD.value
        if not (held or old.status == CertificateStatus.VALID.value) or now >= old.not_after \
                or old.superseded_by_id is not None:
            raise InvalidInput("the certificate is no longer valid or was replaced since the "
                               "plan was made", reason="CERTIFICATE_NOT_VALID")
        label = f"reorganizationOperations/{run.id}"
        if item.action == PlanAction.REASSIGN.value:
            # The certificates it renewed move with it: one subscriber, one managing body (who
            # may hold and release them together).
            old.managing_body = item.new_managing_body
            events = [service._event(actor, "certificate.reassign", row=old,
                                     reorganisation=label)]
            for other in service.renewal_chain(s, old, now):
                other.managing_body = item.new_managing_body
                events.append(service._event(actor, "certificate.reassign", row=other,
                                             reorganisation=label,
                                             with_certificate=f"certificates/{old.id}"))
            return events
        subject = SubjectData.from_dict(json.loads(item.new_subject_json))
        profile = self.rt.profiles.get(old.profile.partition("@")[0])
        public_key = x509.load_der_x509_certificate(old.der).public_key()
        issuer_end = self.rt.authority.certificate.not_valid_after_utc
        cert = self.rt.authority.issue(profile, subject, public_key,
                                       Validity(now.replace(microsecond=0),
                                                min(old.not_after, issuer_end)))
        req = CaRequestRow(
            kind=RequestKind.MODIFY.value, state=RequestState.COMPLETED.value,
            profile=profile.key, certificate_id=old.id, result_certificate_id=None,
            managing_body=item.new_managing_body, province_code=subject.province_code,
            subject_json=item.new_subject_json, csr=None,
            parameters=json.dumps({"reason": RevocationReason.AFFILIATION_CHANGED.value,
                                   "reorganisation": label}, sort_keys=True),
            requested_by=actor.name, client_request_id=None, fingerprint="",
            submitted_at=now, approved_at=now, completed_at=now, decided_by=actor.name,
            rejection_reason="", rejection_message="")
        s.add(req)
        s.flush()
        new = service._insert_certificate(s, cert, profile, subject, item.new_managing_body, now,
                                          req.id, old.id, old.renewal_count)
        req.result_certificate_id = new.id
        old.superseded_by_id = new.id
        item.new_certificate_id = new.id
        changes.issued.append((self.rt.authority.key_id, cert.serial_number))
        events = [service._event(actor, "certificate.modify", row=new, request=req,
                                 predecessor=f"certificates/{old.id}", reorganisation=label)]
        if held:
            # The subscriber stays suspended: the new certificate is held in its turn (released
            # like any hold), and nothing naming the old unit can be released back to validity.
            service._set_status(s, new, RevocationReason.CERTIFICATE_HOLD, now, changes, None)
            events.append(service._event(actor, "certificate.hold", row=new, request=req,
                                         reason=RevocationReason.CERTIFICATE_HOLD.value,
                                         held_as=f"certificates/{old.id}",
                                         reorganisation=label))
        service._set_status(s, old, RevocationReason.AFFILIATION_CHANGED, now, changes, None)
        events += [service._event(actor, "certificate.revoke", row=old, request=req,
                                  reason=RevocationReason.AFFILIATION_CHANGED.value,
                                  superseded_by=f"certificates/{new.id}", reorganisation=label),
                   *service._revoke_related(s, actor, old, RevocationReason.AFFILIATION_CHANGED,
                                            now, changes, req, reorganisation=label)]
        return events
