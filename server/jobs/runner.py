"""The job runner: claims due jobs, runs their handlers on worker threads, heartbeats leases."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import socket
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select, text, update
from sqlalchemy.orm import Session

from server.storage.db import Database
from server.storage.jobs import JobRow
from server.storage.locking import locked

__all__ = ["Handler", "JobContext", "JobInterrupted", "JobRunner", "LeaseLost", "default_owner"]

log = logging.getLogger("server.jobs")

Clock = Callable[[], dt.datetime]
RunInThread = Callable[..., Awaitable[Any]]


class LeaseLost(RuntimeError):
    """This replica no longer owns the job (its lease ran out and another replica took it)."""


class JobInterrupted(RuntimeError):
    """The handler stopped at a checkpoint because this replica is shutting down."""


def default_owner() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class JobContext:
    """What a handler sees: its parameters, the last checkpoint, and ways to record progress."""

    runner: JobRunner
    job_id: str
    kind: str
    params: dict[str, Any]
    checkpoint: dict[str, Any]
    attempt: int
    lost: bool = False
    _stop: Callable[[], bool] = field(default=lambda: False)

    def should_stop(self) -> bool:
        return self._stop()

    def save(self, session: Session, checkpoint: dict[str, Any], *, progress: int | None = None,
             total: int | None = None) -> None:
        """Record ``checkpoint`` in the caller's transaction, together with the step's effects.

        Call it first in the transaction: it locks the job row and checks that this replica still
        holds the lease (raising :class:`LeaseLost`, which rolls the step back, if not)."""
        values: dict[str, Any] = {"checkpoint_json": json.dumps(checkpoint, separators=(",", ":"))}
        if progress is not None:
            values["progress"] = progress
        if total is not None:
            values["total"] = total
        done = session.execute(update(JobRow).where(
            JobRow.id == self.job_id, JobRow.lease_owner == self.runner.owner,
            JobRow.state == "running").values(**values)).rowcount  # type: ignore[attr-defined]
        if done != 1:
            self.lost = True
            raise LeaseLost(f"job {self.job_id} is no longer leased to {self.runner.owner}")
        self.checkpoint = checkpoint

    def step(self, checkpoint: dict[str, Any], *, progress: int | None = None,
             total: int | None = None) -> None:
        """Record a checkpoint in a transaction of its own."""
        with self.runner.db.write() as session:
            self.save(session, checkpoint, progress=progress, total=total)


Handler = Callable[[JobContext], dict[str, Any] | None]


@dataclass(frozen=True)
class _Kind:
    handler: Handler
    exclusive: bool


class JobRunner:
    """Claims and runs jobs of the kinds registered with it.

    ``lease`` is how long a claim lasts without a heartbeat; heartbeats come every third of it.
    Exclusive kinds run one job at a time across all replicas (a second waits for the first)."""

    def __init__(self, db: Database, *, run: RunInThread, clock: Clock,
                 owner: str | None = None, lease_seconds: float = 30.0,
                 poll_seconds: float = 2.0, concurrency: int = 2) -> None:
        self.db = db
        self.owner = owner or default_owner()
        self.clock = clock
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency
        self._run = run
        self._kinds: dict[str, _Kind] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        self._event_loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ registration, submission
    def register(self, kind: str, handler: Handler, *, exclusive: bool = False) -> None:
        self._kinds[kind] = _Kind(handler, exclusive)

    def submit(self, kind: str, params: dict[str, Any], *, job_id: str | None = None,
               session: Session | None = None, not_before: dt.datetime | None = None,
               requeue_finished: bool = False) -> str:
        """Queue a job (in ``session``'s transaction when given). A job id that exists already is
        left as it is, so submitting the same job twice queues it once; with
        ``requeue_finished``, one that ended (done or failed) is queued again."""
        from server.storage.rows import insert_missing

        now = self.clock()
        job_id = job_id or f"{kind}:{uuid.uuid4().hex}"
        values = dict(id=job_id, kind=kind, state="queued", params_json=json.dumps(params),
                      checkpoint_json="{}", result_json="{}", error="", progress=0, total=0,
                      attempts=0, lease_owner="", lease_until=None, heartbeat_at=None,
                      not_before=not_before or now, created_at=now, done_at=None)
        def write(s: Session) -> None:
            if not insert_missing(s, JobRow, values, ["id"]) and requeue_finished:
                s.execute(update(JobRow).where(JobRow.id == job_id,
                                               JobRow.state.in_(("done", "failed"))).values(
                    state="queued", lease_owner="", lease_until=None, error="",
                    params_json=values["params_json"], not_before=values["not_before"]))

        if session is not None:  # the caller wakes the runner (wake()) once it has committed
            write(session)
            return job_id
        with self.db.write() as s:
            write(s)
        self.wake()
        return job_id

    def get(self, job_id: str) -> JobRow | None:
        with self.db.read() as s:
            return s.get(JobRow, job_id)

    # ------------------------------------------------------------ claiming
    def claim(self) -> JobRow | None:
        """Take the lease of one due job (queued, or running with an expired lease)."""
        if not self._kinds:
            return None
        now = self.clock()
        with self.db.write() as s:
            stmt = select(JobRow).where(
                JobRow.kind.in_(list(self._kinds)), JobRow.not_before <= now,
                or_(JobRow.state == "queued",
                    (JobRow.state == "running") & (JobRow.lease_until < now)),
            ).order_by(JobRow.not_before, JobRow.created_at, JobRow.id).limit(8)
            if not self.db.is_sqlite:
                stmt = locked(stmt, skip_locked=True)
            for row in s.execute(stmt).scalars():
                if row.id in self._running:
                    continue
                if self._kinds[row.kind].exclusive and self._busy(s, row, now):
                    continue
                s.execute(update(JobRow).where(JobRow.id == row.id).values(
                    state="running", lease_owner=self.owner, lease_until=now + self.lease,
                    heartbeat_at=now, attempts=JobRow.attempts + 1))
                s.flush()
                s.refresh(row)
                return row
        return None

    def _busy(self, s: Session, row: JobRow, now: dt.datetime) -> bool:
        """Whether another job of this exclusive kind is running under a live lease."""
        if not self.db.is_sqlite:  # replicas claiming the same kind queue here, one at a time
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                      {"k": zlib.crc32(f"job:{row.kind}".encode())})
        other = s.execute(select(JobRow.id).where(
            JobRow.kind == row.kind, JobRow.id != row.id, JobRow.state == "running",
            JobRow.lease_until >= now).limit(1)).first()
        return other is not None

    def _heartbeat(self, job_id: str) -> bool:
        now = self.clock()
        with self.db.write() as s:
            return bool(s.execute(update(JobRow).where(
                JobRow.id == job_id, JobRow.lease_owner == self.owner,
                JobRow.state == "running").values(
                lease_until=now + self.lease, heartbeat_at=now)).rowcount)  # type: ignore[attr-defined]

    def _finish(self, job_id: str, *, result: dict[str, Any] | None, error: str) -> None:
        now = self.clock()
        with self.db.write() as s:
            s.execute(update(JobRow).where(
                JobRow.id == job_id, JobRow.lease_owner == self.owner,
                JobRow.state == "running").values(
                state="failed" if error else "done", error=error[:300],
                result_json=json.dumps(result or {}), lease_until=None, done_at=now))

    def _release(self, job_id: str) -> None:
        """Give the job back at once (shutting down): another replica resumes it now."""
        with self.db.write() as s:
            s.execute(update(JobRow).where(
                JobRow.id == job_id, JobRow.lease_owner == self.owner,
                JobRow.state == "running").values(state="queued", lease_owner="",
                                                  lease_until=None))

    # ------------------------------------------------------------ running
    async def run_once(self) -> str | None:
        """Claim one job and run it to its end here (returns its id, or None if none was due)."""
        row = await self._run(self.claim)
        if row is None:
            return None
        await self._execute(row)
        return str(row.id)

    async def _execute(self, row: JobRow) -> None:
        kind = self._kinds[row.kind]
        ctx = JobContext(self, row.id, row.kind, json.loads(row.params_json),
                         json.loads(row.checkpoint_json), row.attempts,
                         _stop=lambda: self._stopping)
        beat = asyncio.create_task(self._beat(ctx), name=f"job-heartbeat-{row.id}")
        result: dict[str, Any] | None = None
        error = ""
        try:
            result = await self._run(kind.handler, ctx)
        except (LeaseLost, JobInterrupted) as exc:
            log.warning("job %s stopped here: %s", row.id, exc)
            if isinstance(exc, JobInterrupted) and not ctx.lost:
                await self._run(self._release, row.id)
            return
        except Exception as exc:  # noqa: BLE001 - recorded on the job
            log.exception("job %s failed", row.id)
            error = getattr(exc, "message", None) or type(exc).__name__
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        if not ctx.lost:
            await self._run(self._finish, row.id, result=result, error=error)

    async def _beat(self, ctx: JobContext) -> None:
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self._run(self._heartbeat, ctx.job_id):
                    ctx.lost = True
                    return
            except Exception:  # noqa: BLE001 - a missed beat is retried; the lease has slack
                log.exception("job %s heartbeat failed", ctx.job_id)

    def _forget(self, job_id: str) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._running.pop(job_id, None)

        return forget

    def wake(self) -> None:
        """Look for due jobs now (callable from any thread)."""
        loop = self._event_loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="jobs")

    async def _loop(self) -> None:
        while not self._stopping:
            while len(self._running) < self.concurrency and not self._stopping:
                try:
                    row = await self._run(self.claim)
                except Exception:  # noqa: BLE001 - database away: try again at the next poll
                    log.exception("claiming a job failed")
                    break
                if row is None:
                    break
                task = asyncio.create_task(self._execute(row), name=f"job-{row.id}")
                self._running[row.id] = task
                task.add_done_callback(self._forget(row.id))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()

    async def stop(self, grace: float = 30.0) -> None:
        """Stop claiming; handlers see ``should_stop()`` and end at their next checkpoint."""
        self._stopping = True
        self.wake()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=grace)
