"""Declarative base, naming conventions and portable column types shared by every table.

Each domain keeps its tables in its own module (``server/storage/<domain>.py``) on this one
``Base.metadata``, and its migrations on its own Alembic branch (``migrations/versions/<domain>``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

__all__ = ["Base", "BigIntPK", "UTCDateTime"]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC instant. PostgreSQL stores ``timestamptz``; SQLite stores naive UTC text.

    Values going in must be timezone-aware (a naive datetime is a bug, not "probably UTC"); values
    coming out are always aware UTC, with microsecond precision on both databases.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        zone = value.tzinfo
        if zone is None:
            raise ValueError("naive datetime given for a UTC column")
        if zone is not dt.UTC:  # already UTC is the common case: no conversion to make
            value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# A 64-bit integer primary key on PostgreSQL that is still SQLite's INTEGER PRIMARY KEY (rowid alias).
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
