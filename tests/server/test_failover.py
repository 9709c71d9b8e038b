"""PostgreSQL failover under load: a primary and a synchronous streaming standby (initdb and
pg_basebackup, tests/support/pgcluster.py), the server on the multi-host URL with
``target_session_attrs=read-write``. The primary dies, the standby is promoted: the server carries
on without a restart, callers see at most UNAVAILABLE or ABORTED during the switch, and every call
answered OK is in the database after it.

The acknowledged write is the call's audit event: the server answers a call only after its audit
event is committed (server/rpc/interceptors.py), so each OK is a committed row to look for."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest

from server.audit import verify_chain
from server.storage import migrate
from server.storage.db import Database
from tests.support.pgcluster import PgPair
from tests.support.pki import TestPki
from tests.support.server import running_server
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc

pytestmark = pytest.mark.slow


@pytest.fixture
def pair() -> Iterator[PgPair]:
    cluster = PgPair()
    try:
        cluster.start()
        db = Database(cluster.url())
        migrate.upgrade(db)
        db.dispose()
        yield cluster
    finally:
        cluster.close()


async def test_failover_loses_no_acknowledged_write(pair: PgPair, pki: TestPki,
                                                    tmp_path: Path) -> None:
    acknowledged: list[str] = []
    errors: Counter[str] = Counter()
    after_promotion: list[str] = []
    promoted = asyncio.Event()
    stop = asyncio.Event()

    async with running_server(pki, tmp_path, pair.url()) as srv:
        # Without the service config's retries: every failure a caller could see is counted.
        channel = srv.channel(pki.hcm)
        stub = admin_pb2_grpc.AdminServiceStub(channel)

        async def caller() -> None:
            while not stop.is_set():
                request_id = uuid.uuid4().hex
                try:
                    await stub.GetCaller(admin_pb2.GetCallerRequest(), timeout=10,
                                         metadata=(("x-request-id", request_id),))
                except grpc.aio.AioRpcError as err:
                    errors[err.code().name] += 1
                    await asyncio.sleep(0.05)
                    continue
                acknowledged.append(request_id)
                if promoted.is_set():
                    after_promotion.append(request_id)

        workers = [asyncio.create_task(caller()) for _ in range(8)]
        await asyncio.sleep(1.5)
        before = len(acknowledged)
        await asyncio.to_thread(pair.stop_primary)
        await asyncio.sleep(0.5)  # callers meet the dead primary
        await asyncio.to_thread(pair.promote_standby)
        promoted.set()
        deadline = time.monotonic() + 30
        while len(after_promotion) < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*workers)

        # The same process serves again, on the promoted standby.
        retried = admin_pb2_grpc.AdminServiceStub(srv.channel(pki.hcm))
        assert (await retried.GetCaller(admin_pb2.GetCallerRequest())).agency_code == \
            "000.00.00.H29"

    print(f"failover: {len(acknowledged)} calls answered OK ({before} before, "
          f"{len(after_promotion)} after the promotion), refused: {dict(errors)}")
    assert before > 20, f"too little load before the failover ({before} calls)"
    assert len(after_promotion) >= 50, (errors, pair.logs())
    assert set(errors) <= {"UNAVAILABLE", "ABORTED"}, errors
    with psycopg.connect(pair.conninfo(pair.standby_port)) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        stored = {row[0] for row in conn.execute("SELECT request_id FROM audit_events")}
    missing = [r for r in acknowledged if r not in stored]
    assert missing == [], f"{len(missing)} acknowledged calls lost of {len(acknowledged)}"
    db = Database(pair.url())
    try:
        report = verify_chain(db)
    finally:
        db.dispose()
    assert report.ok, report
