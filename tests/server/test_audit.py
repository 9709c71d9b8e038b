from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update

from server.audit import AuditEvent, AuditWriter, append_events, verify_chain
from server.storage.audit import AuditEventRow, AuditHeadRow
from server.storage.db import Database

T0 = dt.datetime(2025, 7, 1, 1, 2, 3, 456789, tzinfo=dt.UTC)


def event(i: int, **kw: object) -> AuditEvent:
    base = dict(at=T0 + dt.timedelta(seconds=i), request_id=f"req-{i:08d}", caller="000.00.00.H29/x",
                kind="rpc", action="/vnegov.admin.v1.AdminService/GetCaller", outcome="OK",
                details={"n": i, "note": "Hồ Chí Minh"})
    base.update(kw)
    return AuditEvent(**base)  # type: ignore[arg-type]


def fill(db: Database, n: int) -> None:
    with db.write() as s:
        append_events(s, [event(i) for i in range(1, n + 1)])


def test_empty_chain_verifies(db: Database) -> None:
    report = verify_chain(db)
    assert report.ok and report.checked == 0


def test_chain_links_every_event_to_the_previous_one(db: Database) -> None:
    fill(db, 5)
    with db.read() as s:
        rows = s.execute(select(AuditEventRow).order_by(AuditEventRow.seq)).scalars().all()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    assert verify_chain(db).ok and verify_chain(db).checked == 5


@pytest.mark.parametrize("column,value", [
    ("outcome", "PERMISSION_DENIED"), ("caller", "someone-else"), ("details", '{"n":3}'),
    ("request_id", "req-forged"),
])
def test_editing_any_event_is_detected_and_named(db: Database, column: str, value: str) -> None:
    fill(db, 6)
    with db.write() as s:
        s.execute(update(AuditEventRow).where(AuditEventRow.seq == 3).values({column: value}))
    report = verify_chain(db)
    assert not report.ok
    assert report.first_broken_seq == 3
    assert "edited" in report.problem
    assert report.checked == 2


@pytest.mark.parametrize("seq", [1, 3, 6])  # the first, one in the middle, the last
@pytest.mark.parametrize("column,value", [
    ("kind", "http"), ("action", "/vnegov.admin.v1.AdminService/ListAuditEvents"),
    ("reason", "MISSING_SCOPE"), ("outcome", "OK "), ("details", '{"n": 3}'),
    ("hash", "f" * 64), ("prev_hash", "e" * 64),
])
def test_every_column_of_every_position_is_covered(db: Database, seq: int, column: str,
                                                    value: str) -> None:
    fill(db, 6)
    with db.write() as s:
        s.execute(update(AuditEventRow).where(AuditEventRow.seq == seq).values({column: value}))
    report = verify_chain(db)
    assert not report.ok
    assert report.first_broken_seq == seq and report.checked == seq - 1


def test_editing_the_time_is_detected(db: Database) -> None:
    fill(db, 4)
    with db.write() as s:
        s.execute(update(AuditEventRow).where(AuditEventRow.seq == 2)
                  .values(at=T0 + dt.timedelta(days=1)))
    assert verify_chain(db).first_broken_seq == 2


def test_rehashing_an_edited_event_breaks_the_next_link(db: Database) -> None:
    """An attacker who recomputes the edited event's hash still breaks the following event."""
    fill(db, 4)
    with db.read() as s:
        row = s.execute(select(AuditEventRow).where(AuditEventRow.seq == 2)).scalar_one()
    from server.audit import event_hash
    forged = event_hash(seq=2, at=row.at, request_id=row.request_id, caller="forged",
                        kind=row.kind, action=row.action, outcome=row.outcome, reason=row.reason,
                        details=row.details, prev_hash=row.prev_hash)
    with db.write() as s:
        s.execute(update(AuditEventRow).where(AuditEventRow.seq == 2)
                  .values(caller="forged", hash=forged))
    report = verify_chain(db)
    assert report.first_broken_seq == 3 and "prev_hash" in report.problem


def test_deleting_an_event_is_detected(db: Database) -> None:
    fill(db, 5)
    with db.write() as s:
        s.execute(delete(AuditEventRow).where(AuditEventRow.seq == 4))
    report = verify_chain(db)
    assert report.first_broken_seq == 4 and "missing" in report.problem


def test_truncating_the_tail_is_detected(db: Database) -> None:
    fill(db, 5)
    with db.write() as s:
        s.execute(delete(AuditEventRow).where(AuditEventRow.seq >= 4))
    report = verify_chain(db)
    assert not report.ok and report.first_broken_seq == 4


def test_head_row_is_single(db: Database) -> None:
    with pytest.raises(Exception), db.write() as s:  # noqa: B017 - CHECK violation, driver-specific
        s.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (2, 0, 'x')"))
    with db.read() as s:
        assert s.execute(select(AuditHeadRow)).scalars().all()[0].id == 1


def test_concurrent_writers_keep_one_chain(db: Database) -> None:
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(15):
                with db.write() as s:
                    append_events(s, [event(k * 100 + i)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = verify_chain(db)
    assert report.ok and report.checked == 90


async def test_group_commit_writer_records_every_event(db: Database) -> None:
    writer = AuditWriter(db)
    writer.start()
    seqs = await asyncio.gather(*(writer.record(event(i)) for i in range(200)))
    await writer.close()
    assert sorted(seqs) == list(range(1, 201))
    assert verify_chain(db).checked == 200


async def test_writer_stores_what_append_events_stores(db: Database) -> None:
    """The writer's batches (on PostgreSQL: one INSERT of the batch as JSON, in a pipeline) store
    each event exactly as the transactional path does: same columns, same hashes, one chain,
    also when two writers (two replicas) append at once."""
    awkward = [event(i, details={"quote": 'a "b" \\ c\n', "vi": "Ủy ban nhân dân", "none": None,
                                 "yes": True, "n": -i, "long": "x" * 600},
                     reason="ĐÃ THU", at=T0 + dt.timedelta(microseconds=123457 * i))
               for i in range(40)]
    with db.write() as s:
        append_events(s, awkward[:2])
    writers = [AuditWriter(db), AuditWriter(db)]
    for writer in writers:
        writer.start()
    seqs = await asyncio.gather(*(writers[i % 2].record(e) for i, e in enumerate(awkward[2:])))
    for writer in writers:
        await writer.close()
    assert sorted(seqs) == list(range(3, 41))
    assert verify_chain(db).ok
    with db.read() as s:
        rows = s.execute(select(AuditEventRow).order_by(AuditEventRow.seq)).scalars().all()
    by_request = {r.request_id: r for r in rows}
    for e in awkward:
        row = by_request[e.request_id]
        assert (row.at, row.caller, row.kind, row.action, row.outcome, row.reason) == \
            (e.at, e.caller, e.kind, e.action, e.outcome, e.reason)
        details = json.loads(row.details)
        assert details["vi"] == "Ủy ban nhân dân" and details["quote"] == 'a "b" \\ c\n'
        assert details["none"] is None and details["yes"] is True and details["n"] <= 0
        assert details["long"] == "x" * 500 + "…"


async def test_writer_reports_a_failed_batch_to_its_waiters_and_goes_on(db: Database) -> None:
    """A batch the database refuses fails every call in it (nothing of it is stored); the next
    batch is committed."""
    writer = AuditWriter(db)
    writer.start()
    assert await writer.record(event(0)) == 1
    with db.write() as s:
        s.execute(update(AuditHeadRow).values(seq=0))  # the next seq (1) is taken
    failed = await asyncio.gather(*(writer.record(event(i)) for i in range(4, 7)),
                                  return_exceptions=True)
    assert all(isinstance(r, Exception) for r in failed)
    with db.write() as s:
        s.execute(update(AuditHeadRow).values(seq=1))
    assert await writer.record(event(7)) == 2
    await writer.close()
    with db.read() as s:
        stored = s.execute(select(AuditEventRow.request_id)).scalars().all()
    assert not {f"req-{i:08d}" for i in range(4, 7)} & set(stored)


async def test_writer_takes_a_fresh_connection_after_losing_its_own(db: Database) -> None:
    """The writer keeps its connection between batches; when the database drops it (a restart,
    an administrator), the batch that finds it dead before sending anything is written on a fresh
    connection: no call fails, nothing is written twice."""
    writer = AuditWriter(db)
    writer.start()
    assert await writer.record(event(0)) == 1
    if db.dialect == "postgresql":
        with db.engine.connect() as c:
            killed = c.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                "datname = current_database() AND pid <> pg_backend_pid()")).scalars().all()
        assert killed and all(killed)
        assert await writer.record(event(1)) == 2
        expected = 3
    else:
        assert writer._connection is not None
        writer._connection.invalidate()  # what SQLAlchemy does on a disconnect error
        expected = 2
    assert await writer.record(event(2)) == expected
    await writer.close()
    assert writer._connection is None
    assert verify_chain(db).checked == expected


async def test_writer_lingers_only_while_other_calls_are_running(db: Database) -> None:
    """A caller that sends one call at a time is never held back for a batch that cannot form;
    with other announced calls still running, the commit waits for them to share it."""
    writer = AuditWriter(db, linger=30.0)
    writer.start()
    for i in range(5):  # back to back, densely: without calls in flight, no waiting
        writer.call_started()
        await asyncio.wait_for(writer.record(event(i), ends_call=True), timeout=10)
    await writer.close()

    writer = AuditWriter(db, linger=1.0)
    writer.start()
    writer.call_started()
    writer.call_started()  # a second call, still running...
    await writer.record(event(5), ends_call=True)
    lingering = asyncio.ensure_future(writer.record(event(6)))  # ...arriving densely
    done, _ = await asyncio.wait({lingering}, timeout=0.3)
    assert not done  # held for the running call to share the transaction
    assert await asyncio.wait_for(lingering, timeout=10) == 7
    await writer.close()
    assert verify_chain(db).checked == 7


async def test_writer_reports_database_failure_to_every_waiter(sqlite_db: Database) -> None:
    with sqlite_db.write() as s:
        s.execute(text("DROP TABLE audit_events"))
    writer = AuditWriter(sqlite_db)
    writer.start()
    results = await asyncio.gather(*(writer.record(event(i)) for i in range(3)),
                                   return_exceptions=True)
    await writer.close()
    assert all(isinstance(r, Exception) for r in results)


@pytest.mark.parametrize("sql", [
    "UPDATE audit_events SET at = 'the day before' WHERE seq = 4",
    "UPDATE audit_events SET at = '' WHERE seq = 4",
    "UPDATE audit_events SET outcome = CAST(outcome AS BLOB) WHERE seq = 4",
    "UPDATE audit_events SET details = CAST(details AS BLOB) WHERE seq = 4",
])
def test_audit_verify_names_an_event_edited_beyond_reading(
        sqlite_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        sql: str) -> None:
    """SQLite stores any value in any column: an edit can leave an event that cannot be read
    back. `vnegov audit verify` still fails and names it."""
    from server.cli import main

    fill(sqlite_db, 6)
    config = tmp_path / "vnegov.toml"
    config.write_text(f'data_dir = "."\n[storage]\nurl = "{sqlite_db.url}"\n', encoding="utf-8")
    assert main(["--config", str(config), "audit", "verify"], {}) == 0
    assert "audit chain OK: 6 events verified" in capsys.readouterr().out
    with sqlite_db.write() as s:
        s.execute(text(sql))
    assert main(["--config", str(config), "audit", "verify"], {}) == 1
    assert "audit chain BROKEN at event 4: the stored event cannot be read" in \
        capsys.readouterr().out


def test_the_first_broken_event_is_named_even_when_a_later_one_cannot_be_read(
        sqlite_db: Database) -> None:
    fill(sqlite_db, 6)
    with sqlite_db.write() as s:
        s.execute(text("UPDATE audit_events SET caller = 'someone else' WHERE seq = 2"))
        s.execute(text("UPDATE audit_events SET at = 'the day before' WHERE seq = 4"))
    report = verify_chain(sqlite_db)
    assert not report.ok and report.first_broken_seq == 2 and report.checked == 1
    assert "does not match its hash" in report.problem
