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
from sqlalchemy.orm import Session

__all__ = ["insert_missing"]


def insert_missing(session: Session, table: Any, values: Mapping[str, Any],
                   key: Sequence[str]) -> bool:
    """Insert ``values`` unless a row with the same ``key`` columns exists; True if inserted."""
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(table).values(**values).on_conflict_do_nothing(index_elements=list(key))
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
