"""``server.workers = N``: N server processes on one host sharing the public ports.

The supervisor (the process ``vnegov serve`` started) applies migrations if asked, then starts N
worker processes (``vnegov serve`` again, told their index by ``VNEGOV_WORKER``). Each worker binds
the gRPC and HTTP ports with ``SO_REUSEPORT``, so the kernel spreads new connections over them and
one host uses all its cores. Workers share nothing but the database: durable jobs take leases
(server/jobs), outboxes are claimed with ``FOR UPDATE SKIP LOCKED`` and caches are told of changes
by LISTEN/NOTIFY, so N workers never do the same job twice.

A worker that dies is started again (after a pause that doubles while workers keep dying at start,
up to 30 s). SIGTERM or SIGINT to the supervisor is passed on to every worker, which shut down
gracefully; the supervisor exits when they have. Port 0 in the configuration is resolved once by
the supervisor, so every worker listens on the same port.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["WORKER_ENV", "Supervisor", "WorkerTag", "reserve_port", "worker_command"]

log = logging.getLogger("server.workers")

WORKER_ENV = "VNEGOV_WORKER"
# A worker that exits sooner than this after its start counts as failing to start.
EARLY_EXIT_SECONDS = 10.0


def reserve_port(host: str) -> tuple[int, socket.socket]:
    """A free port for ``host`` that workers can share: the socket returned keeps it bound (with
    ``SO_REUSEPORT``, not listening) while the supervisor runs, so nothing else takes it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return int(sock.getsockname()[1]), sock


def _stop_with_parent() -> None:
    """In the worker, before it runs: SIGTERM it if the supervisor dies (Linux), so workers are
    never left behind by a supervisor that was killed."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    early_exits: int = 0
    next_start: float = 0.0


class Supervisor:
    """Runs ``count`` workers from ``command`` with ``environ`` until told to stop."""

    def __init__(self, count: int, command: Sequence[str], environ: Mapping[str, str], *,
                 grace_seconds: float) -> None:
        self.count = count
        self.command = list(command)
        self.environ = dict(environ)
        self.grace = grace_seconds
        self.workers = [_Worker(i) for i in range(count)]
        self._stop = False

    def _start(self, worker: _Worker) -> None:
        env = {**self.environ, WORKER_ENV: str(worker.index)}
        worker.proc = subprocess.Popen(self.command, env=env, preexec_fn=_stop_with_parent)
        worker.started_at = time.monotonic()
        log.info("worker started", extra={"worker": worker.index, "pid": worker.proc.pid})

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stop = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        for worker in self.workers:
            self._start(worker)
        while not self._stop:
            time.sleep(0.1)
            now = time.monotonic()
            for worker in self.workers:
                proc = worker.proc
                if proc is not None and proc.poll() is not None:
                    lived = now - worker.started_at
                    worker.early_exits = worker.early_exits + 1 \
                        if lived < EARLY_EXIT_SECONDS else 0
                    delay = min(30.0, 0.5 * 2 ** max(0, worker.early_exits - 1)) \
                        if worker.early_exits else 0.0
                    log.warning("worker exited; starting it again", extra={
                        "worker": worker.index, "pid": proc.pid, "code": proc.returncode,
                        "restart_in_seconds": delay})
                    worker.proc = None
                    worker.next_start = now + delay
                if worker.proc is None and now >= worker.next_start and not self._stop:
                    self._start(worker)
        return self._shutdown()

    def _shutdown(self) -> int:
        running = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        log.info("stopping workers", extra={"workers": len(running)})
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 10
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker did not stop in time; killing it", extra={"pid": proc.pid})
                proc.kill()
                proc.wait()
        log.info("workers stopped")
        return 0


def worker_command() -> list[str]:
    """The command line of one worker: the supervisor's own (same interpreter, entry module and
    configuration); workers skip ``--migrate``, which the supervisor has done."""
    return [sys.executable, *sys.orig_argv[1:]]


class WorkerTag(logging.Filter):
    """Adds the worker's index to every log record of a worker process."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True
