"""Receipts on the database: issuance from the outbox, numbering, corrections, transmission.

Issuance runs in one transaction per batch of payments (one for a single payment): it takes the
outbox rows, locks the counter row of (template, series, year), numbers the receipts in order,
signs them (XML and QR; side by side on ``signing_threads`` threads), stores them and marks the
work done. A crash anywhere before the commit leaves the counter, the receipts and the outbox row as they
were, so the retry after a restart issues the same receipts with the same numbers: no gap, no
duplicate. The unique ``original_key`` (payment and collecting body) makes a second original
impossible even if two workers raced.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

import payments.errors as pe
from payments.money import local_date
from payments.payments.states import PAID_STATES
from payments.receipts.model import (
    Organisation,
    ReceiptData,
    ReceiptKind,
    ReceiptLine,
    RelatedReceipt,
    group_lines,
    next_number,
    series_for,
)
from payments.receipts.qr_jws import QrSeal
from payments.receipts.report import UsageReport, usage_report
from payments.receipts.signing import XmlSigner, document_digest, sign_document
from payments.receipts.transmission import (
    TaxAuthorityTransport,
    build_envelope,
    new_message_id,
    parse_acknowledgement,
)
from payments.receipts.verification import SignedReceipt, read_signed_receipt
from payments.receipts.xml1271 import (
    build_cancellation_xml,
    parse_receipt_xml,
    receipt_tree,
)
from server.audit import AuditEvent, append_events
from server.payments.common import (
    audit,
    claim,
    enqueue,
    idempotent,
    new_id,
    payment_from_row,
)
from server.storage.db import Database
from server.storage.locking import for_update, locked
from server.storage.payments import (
    OutboxRow,
    PaymentRow,
    ReceiptCancellationRow,
    ReceiptCounterRow,
    ReceiptRow,
    TaxSubmissionRow,
)
from server.storage.rows import insert_missing

__all__ = ["ReceiptsStore", "RegisterEntry", "StoredReceipt"]

# Core statements on the tables for the rows written in bulk (no ORM objects are made or kept
# in step with them: none is read back in the same transaction).
_RECEIPTS = cast(Table, ReceiptRow.__table__)
_OUTBOX = cast(Table, OutboxRow.__table__)

_METHODS = {"vietqr": "Chuyển khoản (VietQR)", "platform": "Nền tảng thanh toán Cổng DVCQG",
            "gateway": "Cổng thanh toán trực tuyến"}


class _Numbering:
    """The counters of one transaction: each (template, series, year) row is read once, under
    a row lock on PostgreSQL (SQLite holds the write lock already), advanced in memory and
    written back once. Numbers and receipts commit together or not at all: no gaps."""

    def __init__(self, s: Session, db: Database) -> None:
        self.s, self.db = s, db
        self.last: dict[tuple[str, str, int], int] = {}
        self.known: set[tuple[str, str, int]] = set()

    def next(self, template: str, at: dt.datetime) -> tuple[str, int, int]:
        series, year = series_for(at)
        key = (template, series, year)
        if key not in self.last:
            stmt = select(ReceiptCounterRow.last_number).where(
                ReceiptCounterRow.template == template, ReceiptCounterRow.series == series,
                ReceiptCounterRow.year == year)
            found = self.s.execute(locked(stmt)).scalar_one_or_none()
            if found is None:
                # A new series' first number: replicas may get here together. One inserts the
                # counter, the others find it (ON CONFLICT DO NOTHING waits for the inserting
                # transaction), then all take its lock in turn like any old counter's.
                insert_missing(self.s, ReceiptCounterRow, {
                    "template": template, "series": series, "year": year, "last_number": 0},
                    ["template", "series", "year"])
                found = self.s.execute(stmt).scalar_one()
            self.last[key] = found
        number = next_number(self.last[key])
        self.last[key] = number
        return series, year, number

    def flush(self) -> None:
        for (template, series, year), last in self.last.items():
            self.s.execute(update(ReceiptCounterRow).where(
                ReceiptCounterRow.template == template, ReceiptCounterRow.series == series,
                ReceiptCounterRow.year == year).values(last_number=last))


def _signed_sha256(xml: bytes) -> str | None:
    """SHA-256 of a stored receipt's canonical signed data (None if it no longer reads)."""
    try:
        return read_signed_receipt(xml).signed_sha256
    except pe.InvalidInput:
        return None


@dataclass(frozen=True)
class StoredReceipt:
    id: str
    payment_id: str
    data: ReceiptData
    xml: bytes
    status: str  # valid | replaced | adjusted | cancelled
    qr_token: str = ""  # the signed QR (BL1); "" on receipts issued without one

    @property
    def name(self) -> str:
        return f"payments/{self.payment_id}/receipts/{self.id}"


@dataclass(frozen=True)
class RegisterEntry:
    """A receipt of the register found for a signed receipt (:meth:`ReceiptsStore.registered`)."""

    receipt: StoredReceipt
    registered_at: dt.datetime
    same: bool  # the same signed data: the receipt presented is this one


class ReceiptsStore:
    def __init__(self, db: Database, *, organisations: Mapping[str, Organisation],
                 signer_for: Callable[[str], XmlSigner], template: str = "EBL01",
                 sender_code: str = "V0000000",
                 seal_for: Callable[[str], QrSeal | None] | None = None,
                 signing_threads: int = 1) -> None:
        if not 1 <= signing_threads <= 16:
            raise ValueError("signing_threads must be between 1 and 16")
        self.db = db
        self.organisations = dict(organisations)
        self.signer_for = signer_for
        # The collecting body's seal for the receipts' signed QR codes (None: no QR signature).
        self.seal_for = seal_for
        self.template = template
        self.sender_code = sender_code
        # Threads that sign a batch's receipts (XML and QR) side by side. RSA signatures are
        # computed outside the GIL, so 2 threads on 2 cores issue RSA-sealed batches faster;
        # ECDSA P-256 signs too quickly to gain. The pool lives as long as the store: a token
        # key (signing.pkcs11) opens one session per thread, so threads are not made per batch.
        self._pool = ThreadPoolExecutor(signing_threads, thread_name_prefix="receipt-signing") \
            if signing_threads > 1 else None

    def _organisation(self, agency_code: str) -> Organisation:
        org = self.organisations.get(agency_code)
        if org is None:
            raise pe.FailedPrecondition("no organisation profile for the collecting body",
                                        reason="NO_ORGANISATION",
                                        metadata={"agency_code": agency_code})
        return org

    def _allocate(self, s: Session, template: str, at: dt.datetime) -> tuple[str, int, int]:
        numbering = _Numbering(s, self.db)
        series, year, number = numbering.next(template, at)
        numbering.flush()
        return series, year, number

    def _signed(self, data: ReceiptData) -> bytes:
        return sign_document(self.signer_for(data.collector.agency_code), receipt_tree(data),
                             signing_time=data.issued_at)

    def _qr(self, data: ReceiptData, xml: bytes) -> str | None:
        seal = self.seal_for(data.collector.agency_code) if self.seal_for else None
        return seal.sign_receipt(data, xml) if seal is not None else None

    def _sign_one(self, data: ReceiptData) -> tuple[bytes, str | None]:
        """The signed XML of a receipt and its signed QR (None without a seal)."""
        xml = self._signed(data)
        return xml, self._qr(data, xml)

    def _sign_all(self, receipts: Sequence[ReceiptData]) -> list[tuple[bytes, str | None]]:
        if self._pool is None or len(receipts) < 2:
            return [self._sign_one(d) for d in receipts]
        return list(self._pool.map(self._sign_one, receipts))  # in order; the first error raises

    def _store(self, s: Session, issued: list[tuple[ReceiptData, int, str | None, str | None,
                                                    bytes, str | None]], *,
               request_id: str) -> list[str]:
        """Insert receipts with their signed QR codes, tax-transmission outbox rows and audit
        events, in bulk; returns the QR tokens ("" where no seal signs QR codes)."""
        if not issued:
            return []
        s.execute(insert(_RECEIPTS), [{
            "id": d.id, "payment_id": d.payment_id, "kind": d.kind.value,
            "collector": d.collector.agency_code, "template": d.template, "series": d.series,
            "year": year, "number": d.number, "issued_at": d.issued_at, "total": d.total,
            "original_key": key, "related_id": related, "xml": xml,
            "xml_sha256": document_digest(xml), "qr_token": token}
            for d, year, key, related, xml, token in issued])
        s.execute(insert(_OUTBOX), [{
            "kind": "tax.send", "ref": d.id, "payload": json.dumps({"receipt": d.id}),
            "state": "pending", "attempts": 0, "next_attempt_at": d.issued_at, "last_error": "",
            "created_at": d.issued_at} for d, *_ in issued])
        append_events(s, [AuditEvent(
            at=d.issued_at, request_id=request_id, caller="receipts", kind="payments",
            action=f"receipt.{d.kind.value}", outcome="OK",
            details={"receipt": d.id, "payment": d.payment_id, "label": d.label,
                     "total": d.total}) for d, *_ in issued])
        return [token or "" for *_, token in issued]

    def issue_for_payment(self, payment_id: str, *, now: dt.datetime) -> list[str]:
        """Issue the original receipt(s) of a paid payment (idempotent)."""
        return self.issue_batch([payment_id], now=now)

    def issue_batch(self, payment_ids: Sequence[str], *, now: dt.datetime) -> list[str]:
        """Issue the original receipts of several paid payments in one transaction (what the
        outbox worker does with the work it finds). Idempotent: payments whose work is done, or
        taken by another worker, are skipped."""
        if not payment_ids:
            return []
        with self.db.write() as s:
            stmt = select(OutboxRow).where(OutboxRow.kind == "receipt.issue",
                                           OutboxRow.ref.in_(list(payment_ids)),
                                           OutboxRow.state == "pending")
            tasks = s.execute(locked(stmt, skip_locked=True)).scalars().all()
            if not tasks:
                return []
            payments = {r.id: payment_from_row(r) for r in s.execute(select(PaymentRow).where(
                PaymentRow.id.in_([t.ref for t in tasks]))).scalars()}
            keys = [f"{pid}:{c}" for pid, p in payments.items() for c, _ in group_lines(p)]
            existing = set(s.execute(select(ReceiptRow.original_key).where(
                ReceiptRow.original_key.in_(keys))).scalars())
            numbering = _Numbering(s, self.db)
            numbered: list[tuple[ReceiptData, int, str]] = []
            done: list[int] = []
            blocked: list[tuple[int, str]] = []
            for task in tasks:
                p = payments.get(task.ref)
                if p is None or p.state not in PAID_STATES:
                    continue  # left pending: nothing to issue (yet)
                try:  # a body without profile or key blocks its payment, not the batch
                    for collector, _ in group_lines(p):
                        self._organisation(collector)
                        self.signer_for(collector)
                except pe.FailedPrecondition as exc:
                    blocked.append((task.id, exc.message))
                    continue
                for collector, lines in group_lines(p):
                    key = f"{p.id}:{collector}"
                    if key in existing:
                        continue
                    series, year, number = numbering.next(self.template, now)
                    data = ReceiptData(new_id(), ReceiptKind.ORIGINAL, self.template, series,
                                       number, now, self._organisation(collector), p.payer,
                                       lines, _METHODS.get(p.channel, p.channel), p.id,
                                       p.procedure_code, p.dossier_code)
                    numbered.append((data, year, key))
                done.append(task.id)
            signed = self._sign_all([data for data, _, _ in numbered])
            issued: list[tuple[ReceiptData, int, str | None, str | None, bytes, str | None]] = [
                (data, year, key, None, xml, token)
                for (data, year, key), (xml, token) in zip(numbered, signed, strict=True)]
            self._store(s, issued, request_id=f"outbox:{tasks[0].id}")
            numbering.flush()
            if done:
                s.execute(update(_OUTBOX).where(_OUTBOX.c.id.in_(done)).values(
                    state="done", done_at=now, attempts=_OUTBOX.c.attempts + 1))
            for task_id, message in blocked:
                s.execute(update(OutboxRow).where(OutboxRow.id == task_id).values(
                    attempts=OutboxRow.attempts + 1, last_error=message[:300],
                    next_attempt_at=now + dt.timedelta(minutes=5)))
            return [d.id for d, *_ in issued]

    def pending_issues(self, *, now: dt.datetime, limit: int = 100) -> list[str]:
        with self.db.read() as s:
            return list(s.execute(select(OutboxRow.ref).where(
                OutboxRow.kind == "receipt.issue", OutboxRow.state == "pending",
                OutboxRow.next_attempt_at <= now).order_by(OutboxRow.id).limit(limit)
            ).scalars())

    # ------------------------------------------------------------ reading
    def _status(self, s: Session, receipt_id: str) -> str:
        if s.execute(select(ReceiptCancellationRow.id).where(
                ReceiptCancellationRow.receipt_id == receipt_id)).first():
            return "cancelled"
        kinds = s.execute(select(ReceiptRow.kind).where(ReceiptRow.related_id == receipt_id)
                          ).scalars().all()
        if ReceiptKind.REPLACEMENT.value in kinds:
            return "replaced"
        return "adjusted" if kinds else "valid"

    def _stored(self, s: Session, row: ReceiptRow) -> StoredReceipt:
        return StoredReceipt(row.id, row.payment_id, parse_receipt_xml(row.xml,
                                                                       receipt_id=row.id),
                             row.xml, self._status(s, row.id), row.qr_token or "")

    def get(self, receipt_id: str) -> StoredReceipt:
        with self.db.read() as s:
            row = s.get(ReceiptRow, receipt_id)
            if row is None:
                raise pe.NotFound("no such receipt")
            return self._stored(s, row)

    def for_payment(self, payment_id: str) -> list[StoredReceipt]:
        with self.db.read() as s:
            rows = s.execute(select(ReceiptRow).where(ReceiptRow.payment_id == payment_id)
                             .order_by(ReceiptRow.issued_at, ReceiptRow.number)).scalars().all()
            return [self._stored(s, r) for r in rows]

    def find(self, template: str, series: str, number: int) -> StoredReceipt | None:
        with self.db.read() as s:
            row = s.execute(select(ReceiptRow).where(
                ReceiptRow.template == template, ReceiptRow.series == series,
                ReceiptRow.number == number).order_by(ReceiptRow.year.desc())).scalars().first()
            return self._stored(s, row) if row is not None else None

    def registered(self, signed: SignedReceipt) -> RegisterEntry | None:
        """This register's receipt with the number, year and collecting body that ``signed``
        states (its signature already checked), or None. ``same`` says whether it holds the same
        signed data (the same receipt, however it was serialised since): then ``registered_at``
        proves that the receipt existed at that time. A register entry with other signed data
        under that number is another receipt."""
        r = signed.receipt
        year = local_date(r.issued_at).year  # as series_for numbers it
        with self.db.read() as s:
            row = s.execute(select(ReceiptRow).where(
                ReceiptRow.template == r.template, ReceiptRow.series == r.series,
                ReceiptRow.year == year, ReceiptRow.number == r.number,
                ReceiptRow.collector == r.collector.agency_code)).scalar_one_or_none()
            if row is None:
                return None
            stored = self._stored(s, row)
        same = document_digest(row.xml) == signed.document_sha256 or \
            _signed_sha256(row.xml) == signed.signed_sha256
        return RegisterEntry(stored, row.issued_at, same)

    def cancellation_xml(self, receipt_id: str) -> bytes | None:
        with self.db.read() as s:
            row = s.execute(select(ReceiptCancellationRow).where(
                ReceiptCancellationRow.receipt_id == receipt_id)).scalar_one_or_none()
            return row.xml if row is not None else None

    # ------------------------------------------------------------ corrections
    def _original_for_correction(self, s: Session, receipt_id: str) -> ReceiptRow:
        """The receipt to correct or cancel, locked (``FOR UPDATE`` on PostgreSQL; SQLite's
        single writer) so that concurrent corrections of one receipt serialise: the second
        sees the first's document and is refused, rather than both issuing one."""
        row = for_update(s, ReceiptRow, receipt_id)
        if row is None:
            raise pe.NotFound("no such receipt")
        status = self._status(s, receipt_id)
        if status in ("cancelled", "replaced") or (status != "valid" and row.kind == "original"):
            raise pe.FailedPrecondition("the receipt was already cancelled or replaced",
                                        reason="RECEIPT_NOT_CORRECTABLE")
        return row

    def correct(self, receipt_id: str, *, kind: ReceiptKind, lines: tuple[ReceiptLine, ...],
                reason: str, actor: str, request_id: str, now: dt.datetime) -> StoredReceipt:
        """A replacement (full new content) or an adjustment (differences) of a receipt."""
        with self.db.write() as s:
            return self._correct(s, receipt_id, kind=kind, lines=lines, reason=reason,
                                 actor=actor, request_id=request_id, now=now)

    def _correct(self, s: Session, receipt_id: str, *, kind: ReceiptKind,
                 lines: tuple[ReceiptLine, ...], reason: str, actor: str, request_id: str,
                 now: dt.datetime) -> StoredReceipt:
        if kind is ReceiptKind.ORIGINAL:
            raise pe.InvalidInput("a correction is a replacement or an adjustment")
        if not reason.strip():
            raise pe.InvalidInput("a correction needs a reason", metadata={"field": "reason"})
        row = self._original_for_correction(s, receipt_id)
        original = parse_receipt_xml(row.xml, receipt_id=row.id)
        series, year, number = self._allocate(s, row.template, now)
        data = ReceiptData(new_id(), kind, row.template, series, number, now,
                           original.collector, original.payer, lines,
                           original.payment_method, original.payment_id,
                           original.procedure_code, original.dossier_code,
                           RelatedReceipt(row.template, row.series, row.number,
                                          local_date(row.issued_at), reason))
        xml, qr = self._sign_one(data)
        [token] = self._store(s, [(data, year, None, row.id, xml, qr)], request_id=request_id)
        audit(s, at=now, request_id=request_id, actor=actor, action="receipt.correct",
              details={"original": row.id, "new": data.id, "kind": kind.value})
        return StoredReceipt(data.id, data.payment_id, data, xml, "valid", token)

    def correct_idempotent(self, receipt_id: str, *, kind: ReceiptKind,
                           lines: tuple[ReceiptLine, ...], reason: str, actor: str,
                           request_id: str, now: dt.datetime) -> StoredReceipt:
        """:meth:`correct` once per (actor, request_id): a retry returns the same receipt."""
        fields = {"receipt": receipt_id, "kind": kind.value, "reason": reason,
                  "lines": [(x.item_code, x.name, x.kind.value, x.amount) for x in lines]}
        new_id_ = idempotent(self.db, caller=actor, method="CorrectReceipt",
                             request_id=request_id, fields=fields,
                             action=lambda s: self._correct(s, receipt_id, kind=kind,
                                                            lines=lines, reason=reason,
                                                            actor=actor, request_id=request_id,
                                                            now=now).id)
        return self.get(new_id_)

    def cancel(self, receipt_id: str, *, reason: str, actor: str, request_id: str,
               now: dt.datetime) -> bytes:
        with self.db.write() as s:
            row = self._original_for_correction(s, receipt_id)
            original = parse_receipt_xml(row.xml, receipt_id=row.id)
            notice_id = new_id()
            xml = sign_document(self.signer_for(original.collector.agency_code),
                                build_cancellation_xml(original, notice_id=notice_id, at=now,
                                                       reason=reason), signing_time=now)
            s.execute(insert(ReceiptCancellationRow).values(id=notice_id, receipt_id=row.id,
                                                            at=now, reason=reason[:500],
                                                            xml=xml))
            enqueue(s, "tax.send", f"cancel:{notice_id}", {"cancellation": notice_id}, now)
            audit(s, at=now, request_id=request_id, actor=actor, action="receipt.cancel",
                  details={"receipt": row.id, "notice": notice_id})
            return xml

    # ------------------------------------------------------------ tax authority
    def transmit_pending(self, transport: TaxAuthorityTransport, *, now: dt.datetime,
                         tax_code_of: Callable[[str], str], limit: int = 50,
                         backoff: dt.timedelta = dt.timedelta(seconds=30)) -> int:
        """Send queued documents, one message each; failures retry with growing delays."""
        tasks = claim(self.db, "tax.send", now=now, limit=limit)
        sent = 0
        for task in tasks:
            payload = json.loads(task.payload)
            with self.db.read() as s:
                if "receipt" in payload:
                    r = s.get(ReceiptRow, payload["receipt"])
                    doc, collector, doc_id = (r.xml, r.collector, r.id) if r else (b"", "", "")
                else:
                    c = s.get(ReceiptCancellationRow, payload["cancellation"])
                    r = s.get(ReceiptRow, c.receipt_id) if c else None
                    doc, collector, doc_id = (c.xml, r.collector, c.id) if c and r else \
                        (b"", "", "")
            message_id = new_message_id(self.sender_code)
            error = ""
            ack_id = ""
            try:
                envelope = build_envelope([doc], sender=self.sender_code,
                                          tax_code=tax_code_of(collector), message_id=message_id)
                ack = parse_acknowledgement(transport.send(envelope))
                if ack.refers_to != message_id:
                    error = "acknowledgement for another message"
                elif not ack.accepted:
                    error = "; ".join(ack.reasons)[:300] or "refused"
                ack_id = ack.message_id
            except (OSError, pe.PaymentsError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            with self.db.write() as s:
                s.execute(insert(TaxSubmissionRow).values(
                    message_id=message_id, document_id=doc_id,
                    state="accepted" if not error else "failed", ack_id=ack_id,
                    detail=error, sent_at=now))
                attempts = task.attempts + 1
                if not error:
                    s.execute(update(OutboxRow).where(OutboxRow.id == task.id).values(
                        state="done", attempts=attempts, done_at=now, last_error=""))
                    sent += 1
                else:
                    s.execute(update(OutboxRow).where(OutboxRow.id == task.id).values(
                        attempts=attempts, last_error=error,
                        state="failed" if attempts >= 12 else "pending",
                        next_attempt_at=now + backoff * (2 ** min(attempts - 1, 8))))
                audit(s, at=now, request_id=message_id, actor="tax-transmission",
                      action="receipt.transmit", outcome="OK" if not error else "FAILED",
                      details={"document": doc_id, "message": message_id})
        return sent

    # ------------------------------------------------------------ reports
    def usage(self, *, start: dt.date, end: dt.date) -> UsageReport:
        with self.db.read() as s:
            rows = s.execute(select(ReceiptRow)).scalars().all()
            cancelled = set(s.execute(select(ReceiptCancellationRow.receipt_id)).scalars())
            receipts = [parse_receipt_xml(r.xml, receipt_id=r.id) for r in rows]
        return usage_report(receipts, start=start, end=end, cancelled=cancelled)

    def numbers(self) -> dict[tuple[str, str, int], list[int]]:
        with self.db.read() as s:
            out: dict[tuple[str, str, int], list[int]] = {}
            for t, se, y, n in s.execute(select(ReceiptRow.template, ReceiptRow.series,
                                                ReceiptRow.year, ReceiptRow.number)):
                out.setdefault((t, se, y), []).append(n)
            return out
