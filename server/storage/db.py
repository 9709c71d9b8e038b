"""Database engine and transactions for SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode with ``synchronous=NORMAL``, foreign keys on and a busy timeout; write
transactions start with ``BEGIN IMMEDIATE`` so two writers never deadlock upgrading a read lock.
PostgreSQL runs at READ COMMITTED; code that needs stronger guarantees locks rows explicitly
(``SELECT ... FOR UPDATE``), which SQLite's single writer gives for free.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database"]


class Database:
    """One database per deployment: an engine plus read and write transactions."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            kwargs["pool_size"] = pool_size
        elif self.dialect == "postgresql":
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
            kwargs["pool_pre_ping"] = True
        else:
            raise ValueError(f"unsupported database backend {self.dialect!r}")
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Same pool; connections taken through this engine begin with BEGIN IMMEDIATE on SQLite.
        self._write_engine = self.engine.execution_options(vnegov_write=True)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self._write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A write transaction on a bare Core connection, for hot paths that need no ORM session
        (committed when the block ends, rolled back if it raises)."""
        with self._write_engine.begin() as connection:
            yield connection

    def connect_for_writes(self) -> Connection:
        """A connection of the caller's own, kept for many write transactions (``with
        connection.begin():``), for a writer that commits often: no checkout from the pool, and
        so no liveness round trip to the database, per transaction. The caller closes it."""
        return self._write_engine.connect()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction for reading (never blocks writers on SQLite WAL). Nothing is committed:
        closing the session returns the connection, which ends the transaction. Objects read stay
        usable after the block (they are detached, not expired)."""
        with self._read_sessions() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours (see "begin").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("vnegov_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")
