"""Delivery of back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.5) and the
clean-up of expired protocol state.

Logout tokens are queued in ``identity_logout_deliveries`` in the transaction that ends the
session; this worker POSTs each (``logout_token=...``, form-encoded) to the relying party's
``backchannel_logout_uri``. A 200 or 204 answer delivers it; anything else is retried with doubling
delays until ``attempts`` is exhausted. A row is leased before the request (``next_attempt_at`` moved
forward in its own transaction) so that several replicas never send the same token twice at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

import httpx
from sqlalchemy import delete, select, update

from server.audit import AuditEvent, append_events
from server.storage.db import Database
from server.storage.identity import ArtifactRow, LogoutDeliveryRow, ReplayRow, TokenRow
from server.storage.locking import locked

__all__ = ["LogoutDelivery", "purge_expired"]

log = logging.getLogger("server.identity.logout")

_LEASE = dt.timedelta(seconds=30)
_TIMEOUT = 5.0


class LogoutDelivery:
    def __init__(self, db: Database, *, attempts: int,
                 clock: Callable[[], dt.datetime]) -> None:
        self._db = db
        self._attempts = attempts
        self._clock = clock
        self._client = httpx.AsyncClient(timeout=_TIMEOUT, follow_redirects=False)

    async def close(self) -> None:
        await self._client.aclose()

    def _due(self, now: dt.datetime) -> bool:
        """A read (which never blocks writers) before taking any write lock."""
        with self._db.read() as session:
            return session.execute(select(LogoutDeliveryRow.id).where(
                LogoutDeliveryRow.delivered_at.is_(None),
                LogoutDeliveryRow.next_attempt_at <= now,
                LogoutDeliveryRow.attempts < self._attempts).limit(1)).first() is not None

    def _lease(self) -> list[tuple[int, str, str, str, int]]:
        now = self._clock()
        if not self._due(now):
            return []
        with self._db.write() as session:
            query = select(LogoutDeliveryRow.id, LogoutDeliveryRow.client_id,
                           LogoutDeliveryRow.uri, LogoutDeliveryRow.logout_token,
                           LogoutDeliveryRow.attempts).where(
                LogoutDeliveryRow.delivered_at.is_(None),
                LogoutDeliveryRow.next_attempt_at <= now,
                LogoutDeliveryRow.attempts < self._attempts).order_by(
                LogoutDeliveryRow.next_attempt_at).limit(50)
            if self._db.dialect == "postgresql":
                query = locked(query, skip_locked=True)
            rows = session.execute(query).all()
            if rows:
                session.execute(update(LogoutDeliveryRow).where(
                    LogoutDeliveryRow.id.in_([r.id for r in rows])).values(
                    next_attempt_at=now + _LEASE))
        return [(r.id, r.client_id, r.uri, r.logout_token, r.attempts) for r in rows]

    def _settle(self, row_id: int, client_id: str, attempts: int, error: str) -> None:
        now = self._clock()
        with self._db.write() as session:
            if not error:
                session.execute(update(LogoutDeliveryRow).where(
                    LogoutDeliveryRow.id == row_id).values(
                    delivered_at=now, attempts=attempts + 1, last_error=""))
            else:
                delay = dt.timedelta(seconds=min(3600, 5 * 2 ** attempts))
                session.execute(update(LogoutDeliveryRow).where(
                    LogoutDeliveryRow.id == row_id).values(
                    attempts=attempts + 1, next_attempt_at=now + delay, last_error=error[:200]))
            append_events(session, [AuditEvent(
                at=now, request_id="-", caller="identity", kind="identity",
                action="logout.backchannel", outcome="OK" if not error else "FAILED",
                reason=error[:100], details={"client_id": client_id, "attempt": attempts + 1})])

    async def deliver_due(self) -> int:
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(None, self._lease)
        for row_id, client_id, uri, token, attempts in rows:
            error = ""
            try:
                response = await self._client.post(
                    uri, data={"logout_token": token},
                    headers={"cache-control": "no-store"})
                if response.status_code not in (200, 204):
                    error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            await loop.run_in_executor(None, self._settle, row_id, client_id, attempts, error)
        return len(rows)


def purge_expired(db: Database, now: dt.datetime) -> int:
    """Delete protocol state nobody can use any more (kept a day for investigation)."""
    horizon = now - dt.timedelta(days=1)
    removed = 0
    with db.write() as session:
        for statement in (
            delete(ReplayRow).where(ReplayRow.expires_at < now),
            delete(ArtifactRow).where(ArtifactRow.expires_at < horizon),
            delete(TokenRow).where(TokenRow.expires_at < horizon),
            delete(LogoutDeliveryRow).where(LogoutDeliveryRow.created_at < now -
                                            dt.timedelta(days=7)),
        ):
            removed += int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]
    return removed
