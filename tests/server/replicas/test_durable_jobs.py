"""Durable jobs: a reconciliation run whose process is killed is resumed by another process from
its checkpoint, and ends exactly as an uninterrupted run of the same data does."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from payments.reconcile import Statement, StatementLine, write_camt053
from server.jobs import JobRunner
from server.payments.common import trial_balance
from server.payments.module import RECONCILE_JOB
from server.storage.audit import AuditEventRow
from server.storage.db import Database
from server.storage.jobs import JobRow
from server.storage.payments import (
    ExceptionRow,
    LedgerPostingRow,
    LedgerTransactionRow,
    OperationRow,
    PaymentRow,
    ReconItemRow,
    StatementLineRow,
)
from tests.payments.support import T0
from tests.server.payments.conftest import make_world
from tests.support.databases import PostgresTemplates
from tests.support.pki import TestPki
from tests.support.server import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen" / "python")])}
ACCOUNT = "113000012345"


def clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def prepare(url: str, pki: TestPki) -> str:
    """Paid payments, a statement showing most of them plus unexplained money, and a queued
    reconciliation job; returns the job id."""
    db = Database(url)
    world = make_world(db, pki)
    ps = [world.payments.get(world.paid_payment(request_id=f"job-pay-{i:03d}",
                                                at=T0 + dt.timedelta(minutes=i)))
          for i in range(30)]
    d1 = dt.date(2025, 8, 1)
    lines = [StatementLine(ACCOUNT, f"FT{i}", p.amount_due, True, d1, d1, f"FT{i}", "",
                           f"{p.reference} Le phi") for i, p in enumerate(ps[:24])]
    lines += [StatementLine(ACCOUNT, f"X{i}", 50000 + i, True, d1, d1, f"X{i}", "",
                            "chuyen tien") for i in range(8)]
    data = write_camt053([Statement("S1", ACCOUNT, bank_id="970415", from_date=d1, to_date=d1,
                                    opening=0, lines=lines)], message_id="M1", created=T0)
    world.recon.import_statement(data, fmt="camt053", actor="finance", request_id="i1", now=T0)
    op_id = world.recon.start_operation("reconcile", caller="finance", now=T0)

    async def unused(*_a: Any, **_k: Any) -> Any:
        raise AssertionError

    job_id = JobRunner(db, run=unused, clock=clock).submit(RECONCILE_JOB, {
        "operation": op_id, "as_of": (T0 + dt.timedelta(days=3)).isoformat(),
        "actor": "finance"}, job_id=f"{RECONCILE_JOB}:{op_id}")
    db.dispose()
    return job_id


def worker(url: str, owner: str, job_id: str, *, delay: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.recon_worker", url, owner, job_id,
         "--lease", "2", "--delay", str(delay)],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def outcome(url: str) -> dict[str, Any]:
    """Everything a run decides, without surrogate keys (sequences differ after a rollback)."""
    db = Database(url)
    try:
        with db.read() as s:
            postings = s.execute(select(
                LedgerTransactionRow.key, LedgerTransactionRow.kind, LedgerTransactionRow.at,
                LedgerPostingRow.account, LedgerPostingRow.debit, LedgerPostingRow.credit).join(
                LedgerPostingRow, LedgerPostingRow.transaction_id == LedgerTransactionRow.id)
            ).all()
            return {
                "items": [tuple(r) for r in s.execute(select(
                    ReconItemRow.run_id, ReconItemRow.outcome, ReconItemRow.amount,
                    ReconItemRow.line_keys, ReconItemRow.payment_ids, ReconItemRow.method,
                    ReconItemRow.shape, ReconItemRow.note).order_by(ReconItemRow.id))],
                "exceptions": sorted(tuple(r) for r in s.execute(select(
                    ExceptionRow.source, ExceptionRow.outcome, ExceptionRow.account,
                    ExceptionRow.amount, ExceptionRow.line_keys, ExceptionRow.payment_ids,
                    ExceptionRow.state))),
                "postings": sorted(tuple(r) for r in postings),
                "lines": sorted(tuple(r) for r in s.execute(select(
                    StatementLineRow.key, StatementLineRow.reconciled))),
                "settled": sorted(tuple(r) for r in s.execute(select(
                    PaymentRow.id, PaymentRow.settled))),
                "operation": [tuple(r) for r in s.execute(select(
                    OperationRow.state, OperationRow.progress, OperationRow.total,
                    OperationRow.result_json, OperationRow.error))],
                "audited": s.execute(select(AuditEventRow.action).where(
                    AuditEventRow.action == "reconcile.run")).scalars().all(),
                "balance": trial_balance(s).difference,
            }
    finally:
        db.dispose()


def test_a_killed_reconciliation_is_resumed_elsewhere_and_ends_as_an_uninterrupted_run(
        pki: TestPki, postgres_templates: PostgresTemplates, tmp_path: Path) -> None:
    url = postgres_templates.new_database()
    job_id = prepare(url, pki)
    baseline_url = postgres_templates.clone(url)

    baseline = worker(baseline_url, "replica-baseline", job_id)
    out, _ = baseline.communicate(timeout=120)
    assert baseline.returncode == 0 and "job done" in out, out
    expected = outcome(baseline_url)
    assert expected["operation"][0][0] == "done" and len(expected["items"]) > 30

    db = Database(url)
    try:
        a = worker(url, "replica-a", job_id, delay=0.05)
        deadline = time.monotonic() + 60
        progress = total = 0
        while time.monotonic() < deadline:
            with db.read() as s:
                row = s.get(JobRow, job_id)
            assert row is not None
            progress, total = row.progress, row.total
            if 10 <= progress and total:
                break
            time.sleep(0.05)
        a.send_signal(signal.SIGKILL)  # mid-run: no chance to release its lease or clean up
        out_a, _ = a.communicate(timeout=30)
        assert "running attempt 1 from checkpoint start" in out_a, out_a
        with db.read() as s:
            killed = s.get(JobRow, job_id)
        assert killed is not None and killed.state == "running"
        assert killed.lease_owner == "replica-a" and 0 < killed.progress < killed.total
        print(f"killed replica-a at {killed.progress}/{killed.total} items")

        b = worker(url, "replica-b", job_id)
        out_b, _ = b.communicate(timeout=120)
        assert b.returncode == 0 and "job done" in out_b, out_b
        # It resumed from the checkpoint replica-a left, not from the start.
        assert f"running attempt 2 from checkpoint {killed.progress}" in out_b, out_b
        with db.read() as s:
            finished = s.get(JobRow, job_id)
        assert finished is not None and finished.state == "done"
        assert (finished.lease_owner, finished.attempts) == ("replica-b", 2)
    finally:
        db.dispose()
    assert outcome(url) == expected
    assert expected["balance"] == 0 and len(expected["audited"]) == 1
