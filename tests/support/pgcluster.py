"""Two local PostgreSQL clusters for failover tests: a primary and a streaming standby with
synchronous replication, made with ``initdb`` and ``pg_basebackup`` on free ports in a temporary
directory. As root, the clusters run as the ``postgres`` user (initdb refuses root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

from tests.support.server import free_port

__all__ = ["PgPair", "postgres_bin"]


def postgres_bin() -> Path | None:
    """The directory of PostgreSQL's server programs (Debian: /usr/lib/postgresql/N/bin)."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PgPair:
    """``primary`` and ``standby`` data directories; :meth:`start` makes and starts both."""

    def __init__(self, database: str = "vnegov") -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL's server programs (initdb) are not installed")
        self.bin = bindir
        self.database = database
        self.root = Path(tempfile.mkdtemp(prefix="vnegov-pg-"))
        self.primary_dir = self.root / "primary"
        self.standby_dir = self.root / "standby"
        self.primary_port = free_port()
        self.standby_port = free_port()
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam("postgres")
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)

    # ------------------------------------------------------------------ processes
    def _run(self, program: str, *args: str,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / program), *args]
        if self._user is not None:
            command = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--",
                       *command]
        # Started with posix_spawn (absolute program, no cwd, no user switch in the child, fds
        # left open): fork() would run gRPC's fork handlers in the child while the test's gRPC
        # threads are busy, which can crash it. Output to a file, not a pipe: the server pg_ctl
        # starts would inherit a pipe and keep it open.
        with (self.root / "commands.log").open("a", encoding="utf-8") as out:
            out.write(" ".join(command) + "\n")
            out.flush()
            return subprocess.run(command, check=check, close_fds=False,
                                  stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, text=True, timeout=120)

    def _configure(self, data: Path, port: int, extra: Sequence[str]) -> None:
        with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n".join([
                "", f"port = {port}", "listen_addresses = '127.0.0.1'",
                f"unix_socket_directories = '{self.root}'",
                "wal_level = replica", "max_wal_senders = 5", "hot_standby = on",
                "fsync = off", "full_page_writes = off", "shared_buffers = 16MB",
                "max_connections = 60", *extra, ""]))

    def start(self) -> None:
        self._run("initdb", "-D", str(self.primary_dir), "-U", "postgres", "--auth=trust", "-N",
                  "-E", "UTF8", "--locale=C")
        self._configure(self.primary_dir, self.primary_port, ["synchronous_commit = on"])
        self._run("pg_ctl", "-D", str(self.primary_dir), "-l", str(self.root / "primary.log"),
                  "-w", "start")
        with psycopg.connect(self.conninfo(self.primary_port, "postgres"),
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self._run("pg_basebackup", "-D", str(self.standby_dir), "-R", "-X", "stream",
                  "-c", "fast", "-d", f"host=127.0.0.1 port={self.primary_port} user=postgres "
                  "application_name=standby1")
        self._configure(self.standby_dir, self.standby_port, [])
        self._run("pg_ctl", "-D", str(self.standby_dir), "-l", str(self.root / "standby.log"),
                  "-w", "start")
        # Synchronous replication from now on: a commit returns once the standby has its WAL,
        # so every write answered OK survives the loss of the primary. (Set only once the
        # standby runs: until then a commit would wait for it forever.)
        with psycopg.connect(self.conninfo(self.primary_port, "postgres"),
                             autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'standby1'")
            conn.execute("SELECT pg_reload_conf()")
        self.wait_synchronous()

    def wait_synchronous(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with psycopg.connect(self.conninfo(self.primary_port, "postgres")) as conn:
                row = conn.execute("SELECT sync_state FROM pg_stat_replication "
                                   "WHERE application_name = 'standby1'").fetchone()
            if row is not None and row[0] == "sync":
                return
            time.sleep(0.1)
        raise RuntimeError("the standby did not become synchronous:\n" + self.logs())

    def stop_primary(self) -> None:
        """The primary's host dies: stopped at once, without a checkpoint."""
        self._run("pg_ctl", "-D", str(self.primary_dir), "-m", "immediate", "-w", "stop")

    def promote_standby(self) -> None:
        self._run("pg_ctl", "-D", str(self.standby_dir), "-w", "promote")

    def close(self) -> None:
        for data in (self.standby_dir, self.primary_dir):
            if (data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ addresses
    def conninfo(self, port: int, database: str | None = None) -> str:
        return f"host=127.0.0.1 port={port} user=postgres dbname={database or self.database}"

    def url(self) -> str:
        """The multi-host URL a deployment gives the server: libpq tries each host in turn and
        keeps the one that accepts writes."""
        return (f"postgresql+psycopg://postgres@/{self.database}?host=127.0.0.1:{self.primary_port}"
                f"&host=127.0.0.1:{self.standby_port}&target_session_attrs=read-write"
                "&connect_timeout=2")

    def logs(self) -> str:
        parts = []
        for name in ("commands.log", "primary.log", "standby.log"):
            path = self.root / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)
