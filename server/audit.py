"""The append-only, hash-chained audit log.

Each event is hashed (SHA-256) over a canonical JSON rendering of its fields together with the hash of
the event before it, so editing, deleting or reordering any stored event breaks the chain from that
point on; :func:`verify_chain` names the first event that no longer fits. Writers append under a lock
on the single ``audit_head`` row (``SELECT ... FOR UPDATE`` on PostgreSQL, the write lock on SQLite),
so several server processes on one database extend one chain.

Events never contain secrets or document contents: callers pass identifiers, outcomes and reasons.
Domain code appends its events with :func:`append_events` inside its own transaction (the state change
and its audit record commit together); the gRPC layer records each call through :class:`AuditWriter`,
which group-commits the events of concurrent calls in one transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from server.storage.audit import AuditEventRow, AuditHeadRow
from server.storage.db import Database
from server.storage.locking import locked

__all__ = [
    "GENESIS_HASH",
    "AuditEvent",
    "AuditWriter",
    "ChainReport",
    "StoredAuditEvent",
    "append_events",
    "event_hash",
    "verify_chain",
]

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
_MAX_DETAIL_VALUE = 500


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened, before it has a place in the chain."""

    at: dt.datetime
    request_id: str
    caller: str
    kind: str  # "rpc", "auth", "http", or a domain ("ca", "payments", ...)
    action: str  # full gRPC method name, or a domain action such as "certificate.revoke"
    outcome: str  # "OK" or a status / failure code
    reason: str = ""
    details: Mapping[str, str | int | bool | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredAuditEvent:
    seq: int
    at: dt.datetime
    request_id: str
    caller: str
    kind: str
    action: str
    outcome: str
    reason: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


def _format_at(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_details(details: Mapping[str, Any]) -> str:
    clean = {}
    for key, value in details.items():
        if isinstance(value, str) and len(value) > _MAX_DETAIL_VALUE:
            value = value[:_MAX_DETAIL_VALUE] + "…"
        clean[str(key)] = value
    return json.dumps(clean, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(*, seq: int, at: dt.datetime, request_id: str, caller: str, kind: str,
               action: str, outcome: str, reason: str, details: str, prev_hash: str) -> str:
    """SHA-256 (hex) of the canonical JSON of one event; ``details`` is its canonical JSON text."""
    body = json.dumps(
        {
            "seq": seq, "at": _format_at(at), "request_id": request_id, "caller": caller,
            "kind": kind, "action": action, "outcome": outcome, "reason": reason,
            "details": details, "prev_hash": prev_hash,
        },
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def append_events(session: Session | Connection, events: Sequence[AuditEvent]) -> list[int]:
    """Append ``events`` to the chain inside the caller's write transaction (an ORM session or a
    Core connection); returns their sequence numbers."""
    if not events:
        return []
    # Core statements on the tables (not ORM entities): this runs for every audited call.
    connection = session.connection() if isinstance(session, Session) else session
    seq, prev = connection.execute(_SELECT_HEAD).one()
    rows = _chained(events, seq, prev)
    connection.execute(_INSERT_EVENT, rows)
    connection.execute(_UPDATE_HEAD, {"new_seq": rows[-1]["seq"], "new_hash": rows[-1]["hash"]})
    return [r["seq"] for r in rows]


def _chained(events: Sequence[AuditEvent], seq: int, prev: str) -> list[dict[str, Any]]:
    """The rows of ``events`` after the chain's head ``(seq, prev)``."""
    rows: list[dict[str, Any]] = []
    for event in events:
        seq += 1
        # Truncate to what both databases store (microseconds) before hashing.
        at = event.at.astimezone(dt.UTC)
        details = _canonical_details(event.details)
        digest = event_hash(seq=seq, at=at, request_id=event.request_id, caller=event.caller,
                            kind=event.kind, action=event.action, outcome=event.outcome,
                            reason=event.reason, details=details, prev_hash=prev)
        rows.append({
            "seq": seq, "at": at, "request_id": event.request_id, "caller": event.caller,
            "kind": event.kind, "action": event.action, "outcome": event.outcome,
            "reason": event.reason, "details": details, "prev_hash": prev, "hash": digest,
        })
        prev = digest
    return rows


_COLUMNS = ("seq", "at", "request_id", "caller", "kind", "action", "outcome", "reason",
            "details", "prev_hash", "hash")
# The whole batch in one statement with one parameter, whatever its size (so that the statement
# is prepared once): the rows as a JSON array that PostgreSQL turns back into rows.
_PG_INSERT_EVENTS = (
    f"INSERT INTO audit_events ({', '.join(_COLUMNS)}) SELECT {', '.join(_COLUMNS)} "
    "FROM json_populate_recordset(NULL::audit_events, %s::json)")
_PG_HEAD: dict[str, tuple[str, dict[str, Any]]] = {}


def _pg_head(kind: str, dialect: Any) -> tuple[str, dict[str, Any]]:
    """The SQL text and fixed parameters of the head's lock (``"lock"``) or update, compiled
    once from the statements :func:`append_events` runs."""
    found = _PG_HEAD.get(kind)
    if found is None:
        compiled = (_SELECT_HEAD if kind == "lock" else _UPDATE_HEAD).compile(dialect=dialect)
        found = _PG_HEAD[kind] = (str(compiled), dict(compiled.params))
    return found


def commit_events(connection: Connection, events: Sequence[AuditEvent]) -> list[int]:
    """Append ``events`` in a write transaction of their own on ``connection`` (just begun by
    :meth:`Database.write_connection`, which ends it); returns their sequence numbers. What
    :class:`AuditWriter` commits for each batch.

    On PostgreSQL the transaction takes two round trips instead of six, and is committed here:
    the head is locked and read (BEGIN goes in the same pipeline), then the events (one INSERT
    for the whole batch), the new head and COMMIT go together; the block's own COMMIT then
    finds no transaction open and sends nothing."""
    if connection.dialect.name != "postgresql" or not events:
        return append_events(connection, events)
    raw = connection.connection.driver_connection
    sent = False  # whether any of the batch has gone to the server
    try:
        with raw.pipeline(), raw.cursor() as cursor:  # type: ignore[union-attr]
            lock, fixed = _pg_head("lock", connection.dialect)
            cursor.execute(lock, fixed)
            head = cursor.fetchone()
            if head is None:
                raise RuntimeError("the audit chain has no head row (the database is not "
                                   "migrated)")
            rows = _chained(events, int(head[0]), str(head[1]))
            sent = True
            # Times as text that keeps the microseconds: what was hashed is what is stored.
            cursor.execute(_PG_INSERT_EVENTS, [json.dumps(
                [{**r, "at": _format_at(r["at"])} for r in rows], ensure_ascii=False)])
            update, fixed = _pg_head("update", connection.dialect)
            cursor.execute(update, {**fixed, "new_seq": rows[-1]["seq"],
                                    "new_hash": rows[-1]["hash"]})
            raw.commit()  # type: ignore[union-attr]
    except Exception as exc:
        if not sent and (raw.closed or getattr(raw, "broken", False)):  # type: ignore[union-attr]
            raise NothingWritten("the connection was lost before the batch was sent") from exc
        raise
    return [r["seq"] for r in rows]


def _nothing_written(exc: BaseException) -> bool:
    """Whether ``exc`` is, or came while handling, :class:`NothingWritten` (the rollback on the
    dead connection raises an error of its own)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, NothingWritten):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class NothingWritten(Exception):
    """The connection was found dead before any of a batch was sent: the batch may be tried
    again on another connection (once it may have reached the server, it may not: a lost
    COMMIT acknowledgement must not append the events twice)."""


_EVENTS = cast(Table, AuditEventRow.__table__)
_HEAD = cast(Table, AuditHeadRow.__table__)
_SELECT_HEAD = locked(select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1))
_INSERT_EVENT = insert(_EVENTS)
_UPDATE_HEAD = (update(_HEAD).where(_HEAD.c.id == 1)
                .values(seq=bindparam("new_seq"), hash=bindparam("new_hash")))


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class _Unreadable:
    """A stored event that cannot be loaded or hashed: SQLite keeps any value in any column, so
    an edit can leave text in the time column or bytes in a text one."""

    seq: int
    error: str


def _iter_rows(db: Database, batch: int = 5000) -> Iterator[AuditEventRow | _Unreadable]:
    after = 0
    while True:
        try:
            with db.read() as session:
                rows: Sequence[AuditEventRow | _Unreadable] = session.execute(
                    select(AuditEventRow).where(AuditEventRow.seq > after)
                    .order_by(AuditEventRow.seq).limit(batch)).scalars().all()
        except (ValueError, TypeError):  # one of them cannot be read: one by one, to name it
            rows = list(_load_one_by_one(db, after, batch))
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def _load_one_by_one(db: Database, after: int,
                     batch: int) -> Iterator[AuditEventRow | _Unreadable]:
    with db.read() as session:
        seqs = session.execute(select(AuditEventRow.seq).where(AuditEventRow.seq > after)
                               .order_by(AuditEventRow.seq).limit(batch)).scalars().all()
    for seq in seqs:
        try:
            with db.read() as session:
                yield session.execute(
                    select(AuditEventRow).where(AuditEventRow.seq == seq)).scalar_one()
        except (ValueError, TypeError) as exc:
            yield _Unreadable(int(seq), f"{type(exc).__name__}: {str(exc)[:100]}")


def _row_hash(row: AuditEventRow) -> str:
    return event_hash(seq=row.seq, at=row.at, request_id=row.request_id, caller=row.caller,
                      kind=row.kind, action=row.action, outcome=row.outcome, reason=row.reason,
                      details=row.details, prev_hash=row.prev_hash)


def verify_chain(db: Database) -> ChainReport:
    """Recompute the chain from the first event; report the first event that does not fit."""
    prev, expected_seq, checked = GENESIS_HASH, 1, 0
    for row in _iter_rows(db):
        if row.seq != expected_seq:
            return ChainReport(False, checked, expected_seq,
                               f"event {expected_seq} is missing (next stored event is {row.seq})")
        if isinstance(row, _Unreadable):
            return ChainReport(False, checked, row.seq,
                               f"the stored event cannot be read, it was edited ({row.error})")
        if row.prev_hash != prev:
            return ChainReport(False, checked, row.seq,
                               "link to the previous event is broken (prev_hash changed)")
        try:
            digest = _row_hash(row)
        except (ValueError, TypeError) as exc:
            return ChainReport(False, checked, row.seq, "the stored event cannot be read, it "
                               f"was edited ({type(exc).__name__}: {str(exc)[:100]})")
        if digest != row.hash:
            return ChainReport(False, checked, row.seq,
                               "content does not match its hash (the event was edited)")
        prev, expected_seq, checked = row.hash, expected_seq + 1, checked + 1
    with db.read() as session:
        head = session.execute(select(AuditHeadRow).where(AuditHeadRow.id == 1)).scalar_one()
    if head.seq != checked or head.hash != prev:
        return ChainReport(False, checked, checked + 1 if head.seq > checked else head.seq,
                           f"chain head names event {head.seq} but the stored chain ends at "
                           f"{checked} (events removed from the end, or the head was edited)")
    return ChainReport(True, checked)


def to_stored(row: AuditEventRow) -> StoredAuditEvent:
    return StoredAuditEvent(
        seq=row.seq, at=row.at, request_id=row.request_id, caller=row.caller, kind=row.kind,
        action=row.action, outcome=row.outcome, reason=row.reason,
        details=json.loads(row.details), prev_hash=row.prev_hash, hash=row.hash,
    )


_Pending = tuple[AuditEvent, "asyncio.Future[int]"]
# Seconds after which the writer's idle connection goes back to the pool, whose liveness check
# then catches a connection the database or the network dropped while it was idle.
_IDLE_CONNECTION = 30.0


class AuditWriter:
    """Group commit for events recorded by the gRPC layer.

    ``await writer.record(event)`` returns once the event is committed. Events that arrive while a
    commit is in progress go together in the next transaction. When events are arriving densely
    (the last two came less than ``linger`` seconds apart) and more are on their way (other calls
    that will record are still running, announced with :meth:`call_started`, or the last commit
    already carried several events), the writer waits up to ``linger`` before
    committing so that more of them share the transaction: under load many one-event transactions
    become few larger ones, while an isolated call, or each call of a caller that sends one at a
    time, is never delayed.
    """

    def __init__(self, db: Database, *, max_batch: int = 500, linger: float = 0.002) -> None:
        self._db = db
        self._max_batch = max_batch
        self._linger = linger
        # None is the stop marker, queued by close() behind everything already recorded.
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_record = 0.0
        self._last_gap = float("inf")
        self._in_flight = 0  # calls started and not yet recorded
        self._last_batch = 1
        # The writer's own connection (used by one commit at a time), and when it was last used.
        self._connection: Connection | None = None
        self._connection_used = 0.0

    def call_started(self) -> None:
        """A call has begun that will end with ``record(event, ends_call=True)``."""
        self._in_flight += 1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def record(self, event: AuditEvent, *, ends_call: bool = False) -> int:
        """Queue ``event`` and wait until it is committed; returns its sequence number.
        ``ends_call`` closes a call announced with :meth:`call_started`."""
        if ends_call:
            self._in_flight -= 1
        if self._closed:
            raise RuntimeError("audit writer is closed")
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._last_gap, self._last_record = now - self._last_record, now
        future: asyncio.Future[int] = loop.create_future()
        self._queue.put_nowait((event, future))
        return await future

    async def _run(self) -> None:
        stop = False
        while not stop:
            item = await self._queue.get()
            if item is None:
                return
            if (self._last_gap < self._linger and (self._in_flight > 0 or self._last_batch > 1)
                    and self._queue.qsize() < self._max_batch):
                await asyncio.sleep(self._linger)
            batch = [item]
            while len(batch) < self._max_batch and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._last_batch = len(batch)
            await self._commit(batch)

    def _write(self, events: list[AuditEvent]) -> list[int]:
        """Commit ``events`` in one transaction on the writer's own connection (in a worker
        thread, one batch at a time). A connection left idle for a while, or one whose
        transaction failed, is given back and a fresh one taken from the pool (which checks
        it); a batch that found the connection dead before sending anything is written on the
        fresh one, so a connection dropped between batches costs no call anything."""
        now = time.monotonic()
        if self._connection is not None and now - self._connection_used > _IDLE_CONNECTION:
            self._release()
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = self._db.connect_for_writes()
            self._connection_used = now
            try:
                with self._connection.begin():
                    return commit_events(self._connection, events)
            except Exception as exc:
                self._release()
                if attempt == 2 or not _nothing_written(exc):
                    raise
                # Dropped while idle (a database restart, an administrator): nothing of the
                # batch reached the server, so it goes again on a fresh, checked connection.
                log.warning("the audit writer's connection was lost; writing on a new one")
        raise AssertionError("unreachable")

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - already broken: the pool discards it
                log.warning("closing the audit writer's connection failed")

    async def _commit(self, batch: list[_Pending]) -> None:
        def write() -> list[int]:
            return self._write([e for e, _ in batch])

        try:
            seqs = await asyncio.to_thread(write)
        except Exception as exc:  # the database is down or refusing: every waiter learns of it
            log.error("audit write failed", extra={"error": type(exc).__name__})
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), seq in zip(batch, seqs, strict=True):
            if not future.done():
                future.set_result(seq)

    async def close(self) -> None:
        """Commit everything queued, then stop."""
        self._closed = True
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
        await asyncio.to_thread(self._release)
