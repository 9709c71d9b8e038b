"""Rows created on first use, race-free across replicas.

Two replicas using a receipt series, a counter or a job id for the first time at the same moment
must not both insert it (one would fail on the unique key and its caller would see an error).
:func:`insert_missing` inserts with ``ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite both support
it), so the loser of the race simply finds the winner's row; callers then lock the row
(``SELECT ... FOR UPDATE``) as they would an old one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

__all__ = ["insert_missing", "upsert"]


def _dialect(session: Session | Connection) -> Any:
    name = session.dialect.name if isinstance(session, Connection) else \
        session.get_bind().dialect.name
    return postgresql if name == "postgresql" else sqlite


def insert_missing(session: Session | Connection, table: Any, values: Mapping[str, Any],
                   key: Sequence[str]) -> bool:
    """Insert ``values`` unless a row with the same ``key`` columns exists; True if inserted."""
    module = _dialect(session)
    stmt = module.insert(table).values(**values).on_conflict_do_nothing(index_elements=list(key))
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def upsert(session: Session | Connection, table: Any, key: Mapping[str, Any],
           values: Mapping[str, Any]) -> None:
    """Insert the row ``key`` with ``values``, or update it with ``values`` if it exists: one
    statement (``ON CONFLICT DO UPDATE``), so two replicas writing a new key at once both succeed
    and the last to commit wins (unlike "update, and insert if nothing was updated", where the
    second insert fails on the unique key)."""
    module = _dialect(session)
    stmt = module.insert(table).values(**key, **values)
    stmt = stmt.on_conflict_do_update(index_elements=list(key), set_=dict(values))
    session.execute(stmt)
