"""Fault injection per dependency: the status a caller sees (never INTERNAL or UNKNOWN for a fault
that is not a bug), the RetryInfo that tells it when to retry, the audit record, and that nothing
was committed half."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from server.audit import verify_chain
from server.storage.audit import AuditEventRow, AuditHeadRow
from server.storage.db import Database
from tests.server.payments.test_server import payments_section
from tests.support.pki import TestPki
from tests.support.server import running_server
from vnegov.payments.v1 import payments_pb2, payments_pb2_grpc

AS_COLLECTOR = {"auth": {"plaintext_caller": "000.00.00.H29"}}


def details_of(err: grpc.aio.AioRpcError) -> tuple[str, float | None]:
    status = rpc_status.from_call(err)
    assert status is not None
    reason, retry = "", None
    for detail in status.details:
        info, wait = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(wait):
            retry = wait.retry_delay.ToMilliseconds() / 1000
    return reason, retry


def audited(db: Database, request_reason: str, method: str = "ListPayments"
            ) -> list[tuple[str, str]]:
    with db.read() as session:
        rows = session.execute(select(AuditEventRow.outcome, AuditEventRow.reason).where(
            AuditEventRow.action == f"/vnegov.payments.v1.PaymentsService/{method}")).all()
    return [(o, r) for o, r in rows if r == request_reason]


def _pg(db: Database) -> Any:
    url = db.url.set(drivername="postgresql")
    return psycopg.connect(url.render_as_string(False), autocommit=True)


async def _wait_for_blocked_backend(admin: Any, database: str) -> int:
    for _ in range(600):
        row = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            (database,)).fetchone()
        if row is not None:
            return int(row[0])
        await asyncio.sleep(0.05)
    raise AssertionError("the server's query never waited for the lock")


@pytest.mark.postgres
async def test_a_connection_terminated_mid_call_is_unavailable_with_retry_info(
        pki: TestPki, tmp_path: Path, postgres_templates: Any) -> None:
    from tests.support.databases import fresh_database

    with fresh_database("postgresql", postgres_templates, tmp_path) as db:
        async with running_server(pki, tmp_path, db.url.render_as_string(False), plaintext=True,
                                  extra=AS_COLLECTOR) as srv:
            stub = payments_pb2_grpc.PaymentsServiceStub(srv.plaintext_channel())
            locker, admin = _pg(db), _pg(db)
            try:
                locker.execute("BEGIN")
                locker.execute("LOCK TABLE payments_payments IN ACCESS EXCLUSIVE MODE")
                call = asyncio.ensure_future(stub.ListPayments(payments_pb2.ListPaymentsRequest()))
                pid = await _wait_for_blocked_backend(admin, db.url.database or "")
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call
            finally:
                locker.execute("ROLLBACK")
                locker.close()
                admin.close()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            reason, retry = details_of(err.value)
            assert reason == "DATABASE_UNAVAILABLE" and retry is not None and retry > 0
            # The server recovers: the same call now works on a fresh connection.
            await stub.ListPayments(payments_pb2.ListPaymentsRequest())
        assert audited(db, "DATABASE_UNAVAILABLE") == [("UNAVAILABLE", "DATABASE_UNAVAILABLE")]
        assert verify_chain(db).ok


PAYMENT_TABLES = ("payments_payments", "payments_idempotency", "payments_transitions",
                  "payments_ledger_transactions", "payments_ledger_postings", "payments_outbox")


def _counts(db: Database) -> dict[str, int]:
    with db.read() as session:
        return {t: int(session.scalar(text(f"SELECT count(*) FROM {t}")) or 0)
                for t in PAYMENT_TABLES}


@pytest.mark.postgres
async def test_a_write_terminated_mid_transaction_is_unavailable_and_commits_nothing(
        pki: TestPki, tmp_path: Path, postgres_templates: Any) -> None:
    """CreatePayment's transaction has begun and waits to insert its payment when the database
    terminates its connection: UNAVAILABLE with RetryInfo, no row of the payment anywhere (no
    payment, no idempotency record, no ledger line, no outbox row), the failure audited, and the
    same request_id succeeds when retried."""
    from tests.support.databases import fresh_database

    with fresh_database("postgresql", postgres_templates, tmp_path) as db:
        before = _counts(db)
        extra = {**AS_COLLECTOR, "payments": payments_section(pki, tmp_path)}
        async with running_server(pki, tmp_path, db.url.render_as_string(False), plaintext=True,
                                  extra=extra) as srv:
            stub = payments_pb2_grpc.PaymentsServiceStub(srv.plaintext_channel())
            request = payments_pb2.CreatePaymentRequest(
                request_id=uuid.uuid4().hex, procedure_code="1.000494.000.00.00.H29",
                province_code="79", dossier_code="H29-250101-0002",
                payer=payments_pb2.Payer(name="Nguyễn Văn A"), channel="vietqr")
            locker, admin = _pg(db), _pg(db)
            try:
                locker.execute("BEGIN")  # reads go on, the payment's INSERT waits
                locker.execute("LOCK TABLE payments_payments IN SHARE MODE")
                call = asyncio.ensure_future(stub.CreatePayment(request))
                pid = await _wait_for_blocked_backend(admin, db.url.database or "")
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call
            finally:
                locker.execute("ROLLBACK")
                locker.close()
                admin.close()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            reason, retry = details_of(err.value)
            assert reason == "DATABASE_UNAVAILABLE" and retry is not None and retry > 0
            assert _counts(db) == before
            retried = await stub.CreatePayment(request)
            assert retried.name.startswith("payments/")
        assert audited(db, "DATABASE_UNAVAILABLE", "CreatePayment") == [
            ("UNAVAILABLE", "DATABASE_UNAVAILABLE")]
        assert _counts(db)["payments_payments"] == before["payments_payments"] + 1
        assert verify_chain(db).ok


@pytest.mark.postgres
def test_a_session_used_after_its_connection_was_terminated_is_unavailable(
        tmp_path: Path, postgres_templates: Any) -> None:
    """The terminated connection often surfaces later, as SQLAlchemy's PendingRollbackError from a
    session used again: raised while handling the fault (the fault is in its __context__) or after
    it (no chain; SQLAlchemy's code 8s2b says the connection was invalidated). Both are UNAVAILABLE.
    A session left unusable by a failed flush (code 7s2a, a bug) stays INTERNAL."""
    from sqlalchemy.exc import IntegrityError, OperationalError, PendingRollbackError

    from server.errors import map_exception
    from tests.support.databases import fresh_database

    terminate = text("SELECT pg_terminate_backend(pg_backend_pid())")
    with fresh_database("postgresql", postgres_templates, tmp_path) as db:
        with pytest.raises(PendingRollbackError) as during:
            with db.write() as s:
                try:
                    s.execute(terminate)
                except OperationalError:
                    s.execute(text("SELECT 1"))
        with pytest.raises(PendingRollbackError) as after, db.write() as s:
            with contextlib.suppress(OperationalError):
                s.execute(terminate)
            s.execute(text("SELECT 1"))
        for exc in (during.value, after.value):
            mapped = map_exception(exc, "req-1")
            assert (mapped.code, mapped.reason) == (grpc.StatusCode.UNAVAILABLE,
                                                    "DATABASE_UNAVAILABLE")
        assert during.value.__context__ is not None and after.value.__context__ is None
        with Session(db.engine) as s, pytest.raises(PendingRollbackError) as bug:
            s.add(AuditHeadRow(id=1, seq=0, hash="a" * 64))
            s.add(AuditHeadRow(id=1, seq=0, hash="b" * 64))
            with contextlib.suppress(IntegrityError):
                s.flush()  # the same key twice: a bug, and the session is unusable after it
            s.execute(text("SELECT 1"))
        assert bug.value.code == "7s2a"
        assert map_exception(bug.value, "req-2").code == grpc.StatusCode.INTERNAL
        # The tracebacks hold the sessions and their connections: let them go before the
        # database is dropped, not in some later test.
        del during, after, bug
        gc.collect()


@pytest.mark.postgres
async def test_a_lock_timeout_is_aborted_with_retry_info(
        pki: TestPki, tmp_path: Path, postgres_templates: Any) -> None:
    from tests.support.databases import fresh_database

    with fresh_database("postgresql", postgres_templates, tmp_path) as db:
        admin = _pg(db)
        admin.execute(f'ALTER DATABASE "{db.url.database}" SET lock_timeout = 300')
        admin.close()
        async with running_server(pki, tmp_path, db.url.render_as_string(False), plaintext=True,
                                  extra=AS_COLLECTOR) as srv:
            stub = payments_pb2_grpc.PaymentsServiceStub(srv.plaintext_channel())
            locker = _pg(db)
            try:
                locker.execute("BEGIN")
                locker.execute("LOCK TABLE payments_payments IN ACCESS EXCLUSIVE MODE")
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.ListPayments(payments_pb2.ListPaymentsRequest())
            finally:
                locker.execute("ROLLBACK")
                locker.close()
        assert err.value.code() == grpc.StatusCode.ABORTED
        reason, retry = details_of(err.value)
        assert reason == "LOCK_TIMEOUT" and retry == 1.0
        assert audited(db, "LOCK_TIMEOUT") == [("ABORTED", "LOCK_TIMEOUT")]
        assert verify_chain(db).ok


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 4 MiB tmpfs (the machine's own filesystem, full for real: ENOSPC from the kernel)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
            capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_disk_under_sqlite_is_unavailable_and_commits_nothing_half(
        pki: TestPki, tmp_path: Path, sqlite_db: Database, small_disk: Path) -> None:
    path = Path(sqlite_db.url.database or "")
    sqlite_db.dispose()
    shutil.copy(path, small_disk / "vnegov.db")
    url = f"sqlite:///{small_disk / 'vnegov.db'}"
    db = Database(url)
    with db.read() as session:
        before = session.scalar(select(func.count()).select_from(AuditEventRow))
    async with running_server(pki, tmp_path, url, plaintext=True, extra=AS_COLLECTOR) as srv:
        stub = payments_pb2_grpc.PaymentsServiceStub(srv.plaintext_channel())
        await stub.ListPayments(payments_pb2.ListPaymentsRequest())  # works before
        filler = small_disk / "filler"
        with filler.open("wb") as fh:  # take every free byte
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
        try:
            codes = []
            for _ in range(3):
                try:
                    await stub.CreatePayment(payments_pb2.CreatePaymentRequest(
                        request_id=uuid.uuid4().hex, procedure_code="1.000046",
                        province_code="79", dossier_code="H29.79-250101-0001", channel="vietqr"))
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code())
                    reason, retry = details_of(exc)
                    if exc.code() == grpc.StatusCode.UNAVAILABLE:
                        assert reason in {"STORAGE_FULL", "AUDIT_UNAVAILABLE"}, reason
            assert grpc.StatusCode.INTERNAL not in codes and grpc.StatusCode.UNKNOWN not in codes
            assert grpc.StatusCode.UNAVAILABLE in codes
        finally:
            filler.unlink()
        # Space is back: the server serves again, and the audit chain is whole.
        await stub.ListPayments(payments_pb2.ListPaymentsRequest())
    assert verify_chain(db).ok
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(AuditEventRow)) > before
    db.dispose()
