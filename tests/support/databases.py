"""Databases for tests: a fresh, migrated SQLite file or PostgreSQL database per test.

PostgreSQL: the schema is migrated once per session into a template database; each test gets
``CREATE DATABASE ... TEMPLATE`` (fast) and drops it afterwards. The server is found at
``$VNEGOV_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``).
When it is unreachable the PostgreSQL tests are skipped with the reason, except when ``$CI`` is set:
then they fail, because CI must run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from server.storage import migrate
from server.storage.db import Database

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    return os.environ.get("VNEGOV_TEST_POSTGRES_URL", DEFAULT_PG)


class PostgresTemplates:
    """Creates the session's template database on first use; drops everything at the end."""

    def __init__(self) -> None:
        self.admin_url = make_url(postgres_admin_url())
        self.error: str | None = None
        self.template: str | None = None
        self.created: list[str] = []
        self._engine = None

    def _admin(self):  # type: ignore[no-untyped-def]
        if self._engine is None:
            self._engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT",
                                         connect_args={"connect_timeout": 3})
        return self._engine

    def require(self) -> None:
        if self.error is None and self.template is None:
            try:
                name = f"vnegov_tmpl_{uuid.uuid4().hex[:12]}"
                with self._admin().connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                self.created.append(name)
                db = Database(self.admin_url.set(database=name).render_as_string(False))
                migrate.upgrade(db)
                db.dispose()
                self.template = name
            except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
                self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        if self.error is not None:
            message = (f"PostgreSQL is not reachable at {self.admin_url.render_as_string()} "
                       f"({self.error}); set VNEGOV_TEST_POSTGRES_URL to run these tests")
            if os.environ.get("CI"):
                pytest.fail("CI requires PostgreSQL: " + message)
            pytest.skip(message)

    def new_database(self) -> str:
        self.require()
        name = f"vnegov_test_{uuid.uuid4().hex[:12]}"
        with self._admin().connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        self.created.append(name)
        return self.admin_url.set(database=name).render_as_string(False)

    def new_empty_database(self) -> str:
        """A database with no schema at all (for tests of migrating itself)."""
        self.require()
        name = f"vnegov_empty_{uuid.uuid4().hex[:12]}"
        with self._admin().connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.admin_url.set(database=name).render_as_string(False)

    def clone(self, url: str) -> str:
        """A copy of the database at ``url`` (which must have no open connections)."""
        source = make_url(url).database
        name = f"vnegov_clone_{uuid.uuid4().hex[:12]}"
        with self._admin().connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
        self.created.append(name)
        return self.admin_url.set(database=name).render_as_string(False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self._admin().connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        if self._engine is None:
            return
        if not self.created:  # nothing to drop; PostgreSQL may not even be there
            self._engine.dispose()
            return
        with self._admin().connect() as conn:
            for name in reversed(self.created):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._engine.dispose()


@contextmanager
def fresh_database(backend: str, templates: PostgresTemplates, tmp_path: Path) -> Iterator[Database]:
    if backend == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'vnegov.db'}")
        migrate.upgrade(db)
        try:
            yield db
        finally:
            db.dispose()
        return
    url = templates.new_database()
    db = Database(url)
    try:
        yield db
    finally:
        db.dispose()
        templates.drop(url)
