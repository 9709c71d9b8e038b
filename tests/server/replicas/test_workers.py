"""``server.workers = 2``: two processes share the ports, a dead one is started again, and jobs
are done once each however many workers there are."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from server.jobs import JobRunner
from server.payments.module import RECONCILE_JOB
from server.payments.recon_store import ReconStore
from server.storage.audit import AuditEventRow
from server.storage.db import Database
from server.storage.jobs import JobRow
from tests.support.databases import PostgresTemplates
from tests.support.pki import TestPki, pem
from tests.support.server import ServerProcess, free_port, server_config_dict
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc


def clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def entries(proc: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.logs().splitlines() if line.startswith("{")]


def worker_pids(proc: ServerProcess) -> dict[int, int]:
    """The latest pid of each worker, from the supervisor's log."""
    return {e["worker"]: e["pid"] for e in entries(proc) if e["message"] == "worker started"}


async def get_caller(pki: TestPki, port: int, *, retries: int = 0) -> int:
    """GetCaller on a new connection; returns how many times it had to retry UNAVAILABLE."""
    creds = grpc.ssl_channel_credentials(pem(pki.root.cert), pki.hcm.key_pem, pki.hcm.chain_pem)
    for attempt in range(retries + 1):
        async with grpc.aio.secure_channel(f"localhost:{port}", creds) as ch:
            try:
                caller = await admin_pb2_grpc.AdminServiceStub(ch).GetCaller(
                    admin_pb2.GetCallerRequest(), timeout=10)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == retries:
                    raise
                continue
            assert caller.agency_code == "000.00.00.H29"
            return attempt
    raise AssertionError("unreachable")


@pytest.mark.postgres
@pytest.mark.slow
async def test_two_workers_share_the_ports_restart_when_killed_and_run_each_job_once(
        pki: TestPki, postgres_templates: PostgresTemplates, tmp_path: Path) -> None:
    url = postgres_templates.new_database()
    config = server_config_dict(pki, tmp_path, url, grpc_port=free_port(), http_port=free_port(), grace=1,
                                extra={"server": {"workers": 2, "job_poll_seconds": 0.2},
                                       "logging": {"level": "INFO"}})
    proc = ServerProcess(config, tmp_path)
    db = Database(url)
    proc.start()
    try:
        deadline = time.monotonic() + 30
        while len(worker_pids(proc)) < 2 or sum(
                e["message"] == "server started" for e in entries(proc)) < 2:
            assert time.monotonic() < deadline, proc.logs()
            await asyncio.sleep(0.1)
        first_pids = worker_pids(proc)
        # Connections are spread over both workers.
        for _ in range(24):
            await get_caller(pki, proc.grpc_port)

        # Six reconciliation runs queued at once: each is done exactly once, by one worker.
        recon = ReconStore(db, settlement_delay=dt.timedelta(days=2))

        async def never(*_a: Any, **_k: Any) -> Any:
            raise AssertionError

        submitter = JobRunner(db, run=never, clock=clock)
        ops = []
        for _ in range(6):
            op = recon.start_operation("reconcile", caller="finance", now=clock())
            submitter.submit(RECONCILE_JOB, {"operation": op, "as_of": clock().isoformat(),
                                             "actor": "finance"}, job_id=f"{RECONCILE_JOB}:{op}")
            ops.append(op)
        deadline = time.monotonic() + 60
        while True:
            with db.read() as s:
                jobs = s.execute(select(JobRow).where(JobRow.kind == RECONCILE_JOB)).scalars().all()
            if all(j.state == "done" for j in jobs):
                break
            assert time.monotonic() < deadline, [(j.id, j.state) for j in jobs]
            await asyncio.sleep(0.1)
        assert len(jobs) == 6 and {j.attempts for j in jobs} == {1}
        with db.read() as s:
            runs = s.execute(select(AuditEventRow.request_id).where(
                AuditEventRow.action == "reconcile.run")).scalars().all()
        assert sorted(runs) == sorted(ops)  # one run each: no worker did another's job
        print(f"jobs done by {sorted({j.lease_owner.split(':')[1] for j in jobs})} "
              f"(worker pids {sorted(first_pids.values())})")

        # A worker killed outright is started again; the other serves meanwhile. Connections
        # the kernel had queued on the killed worker's socket are reset: clients retry them
        # (as the published service config tells them to).
        os.kill(first_pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        retried = 0
        while worker_pids(proc).get(0) == first_pids[0]:
            assert time.monotonic() < deadline, proc.logs()
            retried += await get_caller(pki, proc.grpc_port, retries=3)
            await asyncio.sleep(0.05)
        print(f"calls retried while a worker was down: {retried}")
        while sum(e["message"] == "server started" for e in entries(proc)) < 3:
            assert time.monotonic() < deadline, proc.logs()
            await asyncio.sleep(0.1)
        for _ in range(24):
            await get_caller(pki, proc.grpc_port)

        proc.signal(signal.SIGTERM)
        assert await proc.wait(60) == 0
    finally:
        proc.kill()
        db.dispose()
    logs = entries(proc)
    served_by = {e.get("worker") for e in logs if e["message"] == "rpc"}
    assert served_by == {0, 1}, served_by
    assert sum(e["message"] == "server stopped" for e in logs) == 2
    assert any(e["message"] == "worker exited; starting it again" and e["worker"] == 0
               for e in logs)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_each_worker_enforces_its_share_of_the_per_address_rates(workers: int) -> None:
    """The kernel spreads a client's connections over the workers and each limits in memory:
    each enforces 1/N of the configured rate and burst, so the host allows what is configured."""
    from server.config import HttpLimits

    limits = HttpLimits()
    share = limits.per_worker(workers)
    for name, configured in limits.classes().items():
        mine = share.classes()[name]
        assert mine.rate_per_second * workers == pytest.approx(configured.rate_per_second)
        assert mine.burst == (max(1, configured.burst // workers) if configured.burst else 0)
        assert mine.body_bytes == configured.body_bytes
    assert share.max_connections == limits.max_connections
