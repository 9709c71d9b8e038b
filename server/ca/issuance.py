"""Group commit for auto-approved issuance, the CA's hot path.

Each caller checks its request and signs its certificate in a worker thread; the database work
of the requests waiting at that moment is then done in one transaction: the idempotency and key
checks, the request rows (already completed: submitted, approved and completed at once), the
certificate rows, and their audit events, with bulk statements.

Synchronous callers (the command line) use :meth:`IssuanceWriter.submit`: whichever finds no
write in progress does the writing for everyone queued, waiting up to ``gather_seconds`` for
issuances still being checked and signed (:meth:`IssuanceWriter.preparing`), so batches are large
under load while a lone request is never delayed. The gRPC path uses :class:`IssueQueue`, which
queues on the event loop and runs one transaction at a time on a worker thread, so no worker
thread ever waits for another's write. Should a batch fail on a constraint (two callers racing
on one request_id), each item is retried alone so one caller's conflict is never another's
error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.audit import AuditEvent, append_events
from server.ca.records import Actor, RequestView, request_view, serial_hex
from server.storage.ca import CaCertificateRow, CaRequestRow
from server.storage.db import Database
from signing.ca import (
    CertificateProfile,
    CertificateStatus,
    RequestKind,
    RequestState,
    RevocationReason,
    SubjectData,
    Timeline,
)
from signing.errors import Conflict, InvalidInput, SigningError

__all__ = ["IssuanceWriter", "IssueQueue", "PreparedIssue"]

# Core tables: bulk statements without the ORM's unit of work (this is the hot path).
_REQUESTS: Table = CaRequestRow.__table__  # type: ignore[assignment]
_CERTIFICATES: Table = CaCertificateRow.__table__  # type: ignore[assignment]


@dataclass
class PreparedIssue:
    """One checked, signed issuance waiting to be written."""

    actor: Actor
    profile: CertificateProfile
    subject: SubjectData
    managing_body: str
    csr: bytes
    parameters: dict[str, Any]
    client_request_id: str
    fingerprint: str
    certificate: x509.Certificate
    key_sha256: str
    submitted_at: dt.datetime
    future: Future[RequestView] = field(default_factory=Future)


class IssuanceWriter:
    def __init__(self, db: Database, issuer_key_id: str, clock: Callable[[], dt.datetime],
                 event: Callable[..., AuditEvent],
                 committed: Callable[[list[tuple[bytes, int]]], None],
                 *, max_batch: int = 200, gather_seconds: float = 0.005,
                 observe: Callable[[int], None] = lambda size: None) -> None:
        self.db = db
        self.issuer_key_id = issuer_key_id
        self.clock = clock
        self.event = event
        self.committed = committed
        self.max_batch = max_batch
        self.gather_seconds = gather_seconds
        self.observe = observe  # batch sizes, for the metrics
        self._queue: list[PreparedIssue] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._writing = False
        self._preparing = 0

    def preparing(self) -> _Preparing:
        """Context manager around checking and signing: tells the writer one more is coming."""
        return _Preparing(self)

    def submit(self, item: PreparedIssue) -> RequestView:
        with self._lock:
            self._queue.append(item)
            self._arrived.notify_all()
            lead = not self._writing
            if lead:
                self._writing = True
        if lead:
            while True:
                with self._lock:
                    deadline = time.monotonic() + self.gather_seconds
                    while (self._preparing and len(self._queue) < self.max_batch
                           and (left := deadline - time.monotonic()) > 0):
                        self._arrived.wait(left)
                    batch = self._queue[:self.max_batch]
                    del self._queue[:self.max_batch]
                    if not batch:
                        self._writing = False
                        break
                self.write(batch)
        return item.future.result()

    def _enter(self) -> None:
        with self._lock:
            self._preparing += 1

    def _leave(self) -> None:
        with self._lock:
            self._preparing -= 1
            self._arrived.notify_all()

    def write(self, batch: list[PreparedIssue]) -> None:
        """Write ``batch`` in one transaction (blocking); every item's future gets its outcome."""
        self.observe(len(batch))
        try:
            issued = self._transaction(batch)
        except IntegrityError:
            if len(batch) == 1:
                self._settle_alone(batch[0])
                return
            for item in batch:
                self.write([item])
            return
        except BaseException as exc:  # noqa: BLE001 - every waiter must learn the outcome
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        if issued:
            self.committed(issued)

    def _settle_alone(self, item: PreparedIssue) -> None:
        """A single item hit a constraint: a concurrent request with its request_id won."""
        with self.db.read() as s:
            row = self._existing(s, [item]).get((item.actor.name, item.client_request_id))
        if row is not None and row.fingerprint == item.fingerprint:
            item.future.set_result(request_view(row))
        else:
            item.future.set_exception(Conflict("request_id was already used for a different "
                                               "request", reason="REQUEST_ID_REUSED",
                                               metadata={"field": "request_id"}))

    @staticmethod
    def _existing(s: Session, items: list[PreparedIssue]) -> dict[tuple[str, str],
                                                                   CaRequestRow]:
        keyed = [(i.actor.name, i.client_request_id) for i in items if i.client_request_id]
        if not keyed:
            return {}
        rows = s.execute(select(CaRequestRow).where(CaRequestRow.client_request_id.in_(
            sorted({k for _, k in keyed})))).scalars().all()
        return {(r.requested_by, r.client_request_id or ""): r for r in rows}

    def _transaction(self, batch: list[PreparedIssue]) -> list[tuple[bytes, int]]:
        outcomes: dict[int, RequestView | SigningError] = {}
        issued: list[tuple[bytes, int]] = []
        with self.db.write() as s:
            existing = self._existing(s, batch)
            conn = s.connection()  # Core statements: no ORM unit of work on the hot path
            keys = sorted({i.key_sha256 for i in batch})
            taken: dict[str, list[tuple[str, str | None]]] = {}
            c = _CERTIFICATES.c
            for digest, status, reason in conn.execute(select(
                    c.public_key_sha256, c.status, c.revocation_reason).where(
                    c.public_key_sha256.in_(keys))):
                taken.setdefault(digest, []).append((status, reason))
            todo: list[PreparedIssue] = []
            positions: list[int] = []
            seen_keys: set[str] = set()
            seen_ids: set[tuple[str, str]] = set()
            for n, item in enumerate(batch):
                ident = (item.actor.name, item.client_request_id)
                found = existing.get(ident) if item.client_request_id else None
                if found is not None:
                    outcomes[n] = request_view(found) if found.fingerprint == item.fingerprint \
                        else Conflict("request_id was already used for a different request",
                                      reason="REQUEST_ID_REUSED",
                                      metadata={"field": "request_id"})
                    continue
                if item.client_request_id and ident in seen_ids:
                    outcomes[n] = Conflict("request_id was already used for a different "
                                           "request", reason="REQUEST_ID_REUSED",
                                           metadata={"field": "request_id"})
                    continue
                problem = _key_problem(taken.get(item.key_sha256, []),
                                       item.key_sha256 in seen_keys)
                if problem is not None:
                    outcomes[n] = problem
                    continue
                seen_keys.add(item.key_sha256)
                if item.client_request_id:
                    seen_ids.add(ident)
                todo.append(item)
                positions.append(n)
            if todo:
                now = self.clock()
                request_rows = [{
                    "kind": RequestKind.ISSUE.value, "state": RequestState.COMPLETED.value,
                    "profile": i.profile.key, "certificate_id": None,
                    "result_certificate_id": None, "managing_body": i.managing_body,
                    "province_code": i.subject.province_code,
                    "subject_json": json.dumps(i.subject.as_dict(), ensure_ascii=False),
                    "csr": i.csr, "parameters": json.dumps(i.parameters, sort_keys=True),
                    "requested_by": i.actor.name,
                    "client_request_id": i.client_request_id or None,
                    "fingerprint": i.fingerprint, "submitted_at": i.submitted_at,
                    "approved_at": now, "completed_at": now, "rejected_at": None,
                    "decided_by": i.actor.name, "rejection_reason": "",
                    "rejection_message": ""} for i in todo]
                requests_t, certs_t = _REQUESTS, _CERTIFICATES
                request_ids = list(conn.execute(
                    insert(requests_t).returning(requests_t.c.id, sort_by_parameter_order=True),
                    request_rows).scalars())
                cert_rows = [{
                    "issuer_key_id": self.issuer_key_id,
                    "serial_number": serial_hex(i.certificate.serial_number),
                    "profile": i.profile.key,
                    "subject_dn": i.certificate.subject.rfc4514_string()[:1000],
                    "common_name": i.subject.common_name[:200],
                    "agency_code": i.subject.agency_code,
                    "province_code": i.subject.province_code, "managing_body": i.managing_body,
                    "subject_json": r["subject_json"], "public_key_sha256": i.key_sha256,
                    "der": i.certificate.public_bytes(serialization.Encoding.DER),
                    "not_before": i.certificate.not_valid_before_utc,
                    "not_after": i.certificate.not_valid_after_utc,
                    "status": CertificateStatus.VALID.value, "revoked_at": None,
                    "revocation_reason": None, "renewal_count": 0, "predecessor_id": None,
                    "superseded_by_id": None, "held_with_id": None, "request_id": rid, "created_at": now,
                } for i, r, rid in zip(todo, request_rows, request_ids, strict=True)]
                cert_ids = list(conn.execute(
                    insert(certs_t).returning(certs_t.c.id, sort_by_parameter_order=True),
                    cert_rows).scalars())
                conn.execute(update(requests_t).where(requests_t.c.id == bindparam("rid"))
                          .values(result_certificate_id=bindparam("cid")),
                          [{"rid": r, "cid": c} for r, c in zip(request_ids, cert_ids,
                                                                 strict=True)])
                events = []
                for i, rid, cid, cert_row in zip(todo, request_ids, cert_ids, cert_rows,
                                                 strict=True):
                    events.append(self.event(
                        i.actor, "certificate.issue", certificate=f"certificates/{cid}",
                        serial=cert_row["serial_number"], profile=i.profile.key,
                        managing_body=i.managing_body,
                        certificate_request=f"certificateRequests/{rid}", kind="issue",
                        states="submitted,approved,completed"))
                    issued.append((bytes.fromhex(self.issuer_key_id),
                                   i.certificate.serial_number))
                append_events(s, events)
                for n, i, rid, cid in zip(positions, todo, request_ids, cert_ids, strict=True):
                    outcomes[n] = RequestView(
                        id=rid, kind=RequestKind.ISSUE, state=RequestState.COMPLETED,
                        profile=i.profile.key, certificate_id=None, result_certificate_id=cid,
                        managing_body=i.managing_body, province_code=i.subject.province_code,
                        subject=i.subject, parameters=i.parameters, requested_by=i.actor.name,
                        client_request_id=i.client_request_id,
                        timeline=Timeline(i.submitted_at, now, now, None), decided_by=i.actor.name,
                        rejection_reason="", rejection_message="")
        for n, item in enumerate(batch):
            outcome = outcomes[n]
            if isinstance(outcome, SigningError):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)
        return issued


class IssueQueue:
    """The event loop's side of the group commit (the gRPC path): prepared issuances queue up
    while a transaction runs on a worker thread, and go together in the next one. No worker
    thread ever waits for another's write."""

    def __init__(self, writer: IssuanceWriter, run: Callable[..., Awaitable[Any]]) -> None:
        self.writer = writer
        self.run = run
        self._pending: list[PreparedIssue] = []
        self._task: asyncio.Task[None] | None = None
        self._preparing = 0
        self._changed = asyncio.Event()

    def preparing(self) -> _QueuePreparing:
        """Around checking and signing on a worker thread: one more issuance is coming."""
        return _QueuePreparing(self)

    async def submit(self, item: PreparedIssue) -> RequestView:
        self._pending.append(item)
        self._changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(),
                                                                name="ca-issue-writer")
        return await asyncio.wrap_future(item.future)

    async def _gather(self) -> None:
        """Wait (up to ``gather_seconds``) for issuances still being prepared."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.writer.gather_seconds
        while self._preparing and len(self._pending) < self.writer.max_batch:
            left = deadline - loop.time()
            if left <= 0:
                return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return

    async def _drain(self) -> None:
        while self._pending:
            await self._gather()
            batch = self._pending[:self.writer.max_batch]
            del self._pending[:self.writer.max_batch]
            try:
                await self.run(self.writer.write, batch)
            except BaseException as exc:  # the executor is gone (shutdown): tell the waiters
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise


class _QueuePreparing:
    def __init__(self, queue: IssueQueue) -> None:
        self.queue = queue

    async def __aenter__(self) -> None:
        self.queue._preparing += 1

    async def __aexit__(self, *exc: object) -> None:
        self.queue._preparing -= 1
        self.queue._changed.set()


class _Preparing:
    def __init__(self, writer: IssuanceWriter) -> None:
        self.writer = writer

    def __enter__(self) -> None:
        self.writer._enter()

    def __exit__(self, *exc: object) -> None:
        self.writer._leave()


def _key_problem(rows: list[tuple[str, str | None]], in_batch: bool) -> SigningError | None:
    for _, reason in rows:
        if reason == RevocationReason.KEY_COMPROMISE.value:
            return InvalidInput("this key was reported compromised", reason="KEY_COMPROMISED")
    if in_batch or any(status != CertificateStatus.REVOKED.value for status, _ in rows):
        return InvalidInput("this public key is already certified; generate a new key pair "
                            "for a new certificate", reason="KEY_ALREADY_CERTIFIED")
    return None

