"""Shared pieces of the payments store: row <-> domain conversion, ledger posting, audit, locks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import payments.errors as pe
from payments.fees.catalogue import FeeKind
from payments.ledger.core import LedgerTransaction, TrialBalance
from payments.payments.idempotency import (
    StoredOutcome,
    check_request_id,
    replay,
    request_hash,
)
from payments.payments.model import Payer, Payment, PaymentLine
from payments.payments.states import PaymentState, Transition
from server.audit import AuditEvent, append_events
from server.storage.db import Database
from server.storage.locking import for_update, locked
from server.storage.payments import (
    IdempotencyRow,
    LedgerPostingRow,
    LedgerTransactionRow,
    OutboxRow,
    PaymentRow,
    TransitionRow,
)
from server.storage.rows import insert_missing

__all__ = [
    "audit",
    "claim",
    "enqueue",
    "idempotent",
    "lock_payment",
    "new_id",
    "payment_from_row",
    "payment_values",
    "post_ledger",
    "record_transitions",
    "trial_balance",
]

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
# Rejection sampling on bytes from the OS's CSPRNG: a byte below 252 (7 x 36) names the
# character at its value modulo 36, each with probability 7/252, exactly uniform; bytes 252-255
# are dropped. bytes.translate does both at C speed.
_ACCEPTED = 7 * len(_ALPHABET)
_CHARS = bytes(ord(_ALPHABET[b % len(_ALPHABET)]) if b < _ACCEPTED else 0 for b in range(256))
_REJECTED = bytes(range(_ACCEPTED, 256))


def new_id(length: int = 20) -> str:
    """A random id of ``length`` lower-case letters and digits (about 5.17 bits each, from
    ``os.urandom``, as ``secrets`` draws them)."""
    out = b""
    while len(out) < length:
        out += os.urandom(length - len(out) + 8).translate(_CHARS, _REJECTED)
    return out[:length].decode("ascii")


def payment_from_row(row: PaymentRow) -> Payment:
    payer = Payer(**json.loads(row.payer_json))
    lines = tuple(PaymentLine(d["item_code"], d["name"], FeeKind(d["kind"]), d["collector"],
                              d["amount"]) for d in json.loads(row.lines_json))
    return Payment(row.id, row.agency_code, row.province_code, row.procedure_code,
                   row.dossier_code, payer, lines, row.reference, row.channel, row.created_at,
                   row.expires_at, PaymentState(row.state), row.collected, row.refunded,
                   row.held, tuple(json.loads(row.line_refunded_json)), row.paid_at)


def payment_values(p: Payment, now: dt.datetime) -> dict[str, Any]:
    return {
        "agency_code": p.agency_code, "province_code": p.province_code,
        "procedure_code": p.procedure_code, "dossier_code": p.dossier_code,
        "payer_json": json.dumps(dataclasses.asdict(p.payer), ensure_ascii=False),
        "lines_json": json.dumps([{**dataclasses.asdict(line), "kind": line.kind.value}
                                  for line in p.lines], ensure_ascii=False),
        "reference": p.reference, "channel": p.channel, "state": p.state.value,
        "amount_due": p.amount_due, "collected": p.collected, "refunded": p.refunded,
        "held": p.held, "line_refunded_json": json.dumps(list(p.line_refunded)),
        "created_at": p.created_at, "expires_at": p.expires_at, "paid_at": p.paid_at,
        "updated_at": now, "dossier_key": None if p.state in _RELEASED else
        f"{p.agency_code}:{p.dossier_code}"[:130],
    }


# States in which a dossier may be paid for again.
_RELEASED = frozenset({PaymentState.EXPIRED, PaymentState.CANCELLED, PaymentState.REFUNDED})


def lock_payment(session: Session, payment_id: str) -> PaymentRow | None:
    """The payment row locked for this transaction, with its current values (see
    :mod:`server.storage.locking`): what every writer of a payment computes from."""
    return for_update(session, PaymentRow, payment_id)


def post_ledger(session: Session, txs: Iterable[LedgerTransaction]) -> None:
    for tx in txs:
        tx_id = session.execute(insert(LedgerTransactionRow).values(
            key=tx.key, at=tx.at, kind=tx.kind, payment_id=tx.payment, memo=tx.memo[:300],
            reverses=tx.reverses).returning(LedgerTransactionRow.id)).scalar_one()
        session.execute(insert(LedgerPostingRow), [
            {"transaction_id": tx_id, "account": p.account, "debit": p.debit, "credit": p.credit}
            for p in tx.postings])


def record_transitions(session: Session, transitions: Sequence[Transition], *, request_id: str
                       ) -> None:
    if not transitions:
        return
    session.execute(insert(TransitionRow), [
        {"payment_id": t.payment, "from_state": t.from_state.value, "to_state": t.to_state.value,
         "at": t.at, "reason": t.reason[:200], "actor": t.actor[:200]} for t in transitions])
    append_events(session, [AuditEvent(
        at=t.at, request_id=request_id, caller=t.actor, kind="payments",
        action="payment.transition", outcome="OK", reason=t.to_state.value.upper(),
        details={"payment": t.payment, "from": t.from_state.value, "to": t.to_state.value,
                 "why": t.reason}) for t in transitions])


def audit(session: Session, *, at: dt.datetime, request_id: str, actor: str, action: str,
          details: dict[str, str | int | bool | None], outcome: str = "OK",
          reason: str = "") -> None:
    append_events(session, [AuditEvent(at=at, request_id=request_id, caller=actor,
                                       kind="payments", action=action, outcome=outcome,
                                       reason=reason, details=details)])


def enqueue(session: Session, kind: str, ref: str, payload: dict[str, Any], now: dt.datetime
            ) -> None:
    """Add outbox work unless the same (kind, ref) is already queued."""
    insert_missing(session, OutboxRow, {
        "kind": kind, "ref": ref, "payload": json.dumps(payload, ensure_ascii=False),
        "state": "pending", "attempts": 0, "next_attempt_at": now, "last_error": "",
        "created_at": now}, ["kind", "ref"])


def claim(db: Database, kind: str, *, now: dt.datetime, limit: int,
          lease: dt.timedelta = dt.timedelta(minutes=2)) -> list[OutboxRow]:
    """Take up to ``limit`` due outbox rows of ``kind`` for this worker: they are locked with
    ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite has one writer) and leased by moving their
    next attempt past the lease, so another replica's worker skips them; a worker that dies
    mid-delivery leaves them to be retried when the lease runs out (at-least-once)."""
    with db.write() as s:
        stmt = select(OutboxRow).where(OutboxRow.kind == kind, OutboxRow.state == "pending",
                                       OutboxRow.next_attempt_at <= now
                                       ).order_by(OutboxRow.id).limit(limit)
        rows = list(s.execute(locked(stmt, skip_locked=True)).scalars())
        if rows:
            s.execute(update(OutboxRow).where(OutboxRow.id.in_([r.id for r in rows]))
                      .values(next_attempt_at=now + lease))
        return rows


def trial_balance(session: Session) -> TrialBalance:
    rows = session.execute(select(LedgerPostingRow.account, func.sum(LedgerPostingRow.debit),
                                  func.sum(LedgerPostingRow.credit))
                           .group_by(LedgerPostingRow.account)).all()
    balances = {a: int(d or 0) - int(c or 0) for a, d, c in rows}
    return TrialBalance(dict(sorted(balances.items())), sum(int(d or 0) for _, d, _ in rows),
                        sum(int(c or 0) for _, _, c in rows))

_ERRORS: Mapping[str, type[pe.PaymentsError]] = {
    name: cls for name, cls in vars(pe).items()
    if isinstance(cls, type) and issubclass(cls, pe.PaymentsError)
}


def idempotent(db: Database, *, caller: str, method: str, request_id: str,
               fields: Mapping[str, Any], action: Callable[[Session], str]) -> str:
    """Run ``action`` (in a write transaction) once per (caller, method, request_id) and return
    its result; a retry gets the stored outcome, success or failure alike (AIP-155)."""
    check_request_id(request_id)
    digest = request_hash(method, fields)

    def stored() -> StoredOutcome | None:
        with db.read() as s:
            row = s.execute(select(IdempotencyRow).where(
                IdempotencyRow.caller == caller, IdempotencyRow.method == method,
                IdempotencyRow.request_id == request_id)).scalar_one_or_none()
        if row is None:
            return None
        return StoredOutcome(row.request_hash, row.ok, row.result, row.error_class,
                             row.error_reason, row.error_message)

    def remember(s: Session, ok: bool, result: str = "",
                 error: pe.PaymentsError | None = None) -> None:
        s.execute(insert(IdempotencyRow).values(
            caller=caller[:200], method=method, request_id=request_id, request_hash=digest,
            ok=ok, result=result, error_class=type(error).__name__ if error else "",
            error_reason=error.reason if error else "",
            error_message=error.message if error else "", created_at=dt.datetime.now(dt.UTC)))

    previous = stored()
    if previous is not None:
        return replay(previous, digest, _ERRORS)
    try:
        with db.write() as s:
            result = action(s)
            remember(s, True, result)
        return result
    except pe.PaymentsError as exc:
        if isinstance(exc, pe.InvalidInput) and not isinstance(exc, pe.RequestIdReused):
            raise  # malformed requests are not outcomes worth remembering
        try:
            with db.write() as s:
                remember(s, False, error=exc)
        except IntegrityError:  # a concurrent retry stored its outcome first: that one stands
            previous = stored()
            if previous is not None:
                return replay(previous, digest, _ERRORS)
        raise
    except IntegrityError:
        previous = stored()
        if previous is None:
            raise
        return replay(previous, digest, _ERRORS)
