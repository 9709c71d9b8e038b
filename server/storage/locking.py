"""Row locks that always read the locked row's current values.

A ``SELECT ... FOR UPDATE`` waits for the row's other writers and then reads the row as they
left it; but an ORM session that loaded the same row earlier in the transaction returns the
object from its identity map, with the values it read *before* the lock, unless it is told to
overwrite them (``populate_existing``). Code that locked a payment and then computed from the
stale object lost money on PostgreSQL (a second concurrent transfer was recorded but not
counted). Every store that changes money or counters takes its row locks through this module,
and ``tests/server/test_locking.py`` refuses a bare ``with_for_update`` anywhere else.

On SQLite ``FOR UPDATE`` is not rendered: write transactions begin with ``BEGIN IMMEDIATE`` and
hold the database's single write lock, so the row read is current anyway.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

__all__ = ["for_update", "locked"]

T = TypeVar("T")
_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])


def locked(stmt: _S, *, skip_locked: bool = False, of: Any = None) -> _S:
    """``stmt`` reading its rows for update: the rows are locked until the transaction ends
    (``FOR UPDATE``; ``SKIP LOCKED`` leaves rows another transaction holds), and ORM objects the
    session already holds for them are refreshed with the values read under the lock."""
    kwargs: dict[str, Any] = {"skip_locked": skip_locked}
    if of is not None:
        kwargs["of"] = of
    return stmt.with_for_update(**kwargs).execution_options(populate_existing=True)


def for_update(session: Session, model: type[T], key: Any) -> T | None:
    """The row of ``model`` with primary key ``key``, locked for this transaction, with its
    current values (never a stale copy from the session), or None."""
    mapper: Any = getattr(model, "__mapper__")  # noqa: B009 - typed as Any on purpose
    pk = mapper.primary_key
    if len(pk) != 1:
        raise TypeError(f"{model.__name__} has a composite key: use locked(select(...))")
    stmt = locked(select(model).where(pk[0] == key))
    return session.execute(stmt).scalar_one_or_none()
