from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, MetaData, Table, select

from server.storage import migrate
from server.storage.base import UTCDateTime
from server.storage.db import Database
from server.storage.schema import metadata


def test_migrations_reach_every_head(db: Database) -> None:
    assert migrate.pending(db) == set()
    assert "core_0001" in migrate.current_heads(db) or migrate.current_heads(db)


def test_models_match_migrations(db: Database) -> None:
    """The tables the code declares are exactly what the migrations create, on both databases."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_migrating_twice_changes_nothing(db: Database) -> None:
    before = migrate.current_heads(db)
    migrate.upgrade(db)
    assert migrate.current_heads(db) == before


def test_utc_datetime_round_trips_with_microseconds(db: Database) -> None:
    table = Table("t_instants", MetaData(), Column("at", UTCDateTime()))
    table.create(db.engine)
    value = dt.datetime(2025, 7, 1, 0, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    with db.write() as s:
        s.execute(table.insert().values(at=value))
    with db.read() as s:
        got = s.execute(select(table.c.at)).scalar_one()
    assert got == value and got.tzinfo == dt.UTC
    assert got.isoformat() == "2025-06-30T17:00:00.123456+00:00"


def test_naive_datetimes_are_refused(db: Database) -> None:
    table = Table("t_naive", MetaData(), Column("at", UTCDateTime()))
    table.create(db.engine)
    with pytest.raises(Exception, match="naive datetime"), db.write() as s:
        s.execute(table.insert().values(at=dt.datetime(2025, 1, 1)))


def test_a_failed_write_transaction_leaves_nothing(db: Database) -> None:
    table = Table("t_atomic", MetaData(), Column("n", UTCDateTime()))
    table.create(db.engine)
    with pytest.raises(RuntimeError), db.write() as s:
        s.execute(table.insert().values(n=dt.datetime.now(dt.UTC)))
        raise RuntimeError("boom")
    with db.read() as s:
        assert s.execute(select(table.c.n)).all() == []


def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database backend"):
        Database("mysql://localhost/x")
