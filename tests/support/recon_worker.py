"""A replica's job runner alone in a process, for tests that kill it with SIGKILL.

    python -m tests.support.recon_worker DATABASE_URL OWNER JOB_ID [--lease S] [--delay S]

Registers the reconciliation job handler the server registers (``run_reconciliation``), with
batches of 5 items and ``--delay`` seconds spent on each item so a test can kill it mid-run; runs
jobs until JOB_ID is done or failed, then exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from server.jobs import JobContext, JobRunner
from server.payments import recon_store
from server.payments.module import RECONCILE_JOB, run_reconciliation
from server.storage.db import Database


class SlowRecon(recon_store.ReconStore):
    delay = 0.0

    def _apply(self, *args: Any, **kwargs: Any) -> None:
        time.sleep(self.delay)
        super()._apply(*args, **kwargs)


def clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("owner")
    parser.add_argument("job_id")
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    recon_store.RECONCILE_BATCH = 5
    db = Database(args.url)
    recon = SlowRecon(db, settlement_delay=dt.timedelta(days=2))
    recon.delay = args.delay
    executor = ThreadPoolExecutor(4)
    loop = asyncio.get_running_loop()

    async def run(fn: Any, *a: Any, **k: Any) -> Any:
        return await loop.run_in_executor(executor, partial(fn, *a, **k))

    runner = JobRunner(db, run=run, clock=clock, owner=args.owner, lease_seconds=args.lease,
                       poll_seconds=0.1)

    def handler(job: JobContext) -> dict[str, Any]:
        print(f"running attempt {job.attempt} from checkpoint "
              f"{job.checkpoint.get('applied', 'start')}", flush=True)
        return run_reconciliation(recon, job, clock)

    runner.register(RECONCILE_JOB, handler, exclusive=True)
    print("ready", flush=True)
    while True:
        await runner.run_once()
        row = await run(runner.get, args.job_id)
        if row is not None and row.state in ("done", "failed"):
            print(f"job {row.state}", flush=True)
            break
        await asyncio.sleep(0.1)
    executor.shutdown()
    db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
