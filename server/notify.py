"""Changes every replica must learn at once, by PostgreSQL LISTEN/NOTIFY.

A change that other replicas cache (a client disabled or re-registered with new keys, a
certificate revoked, held or released, the identity provider's keys rotated) calls
:func:`notify` in the transaction that makes it: PostgreSQL delivers the notification to every
listening connection when, and only if, that transaction commits. Each replica keeps one listening
connection (:class:`ChangeListener`) and runs the callbacks subscribed to the topic, which drop or
reload the cache. After the listening connection is (re)established every callback runs once, since
notifications sent while it was away are lost. Polling stays as the fallback: on SQLite (one host)
and when the listening connection is down, caches still expire on their own timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session

__all__ = ["CHANNEL", "ChangeListener", "notify"]

log = logging.getLogger("server.notify")

CHANNEL = "vnegov_changes"

# Topics (the payload's part before the first ":"; the rest is detail for logs).
CLIENTS = "identity.clients"
IDENTITY_KEYS = "identity.keys"
CERTIFICATE_STATUS = "ca.status"


def notify(target: Session | Connection, topic: str, detail: str = "") -> None:
    """Send ``topic`` to every replica when ``target``'s transaction commits (PostgreSQL; SQLite
    has no other replica to tell, so nothing is sent)."""
    dialect = target.dialect if isinstance(target, Connection) else target.get_bind().dialect
    if dialect.name != "postgresql":
        return
    payload = f"{topic}:{detail}"[:7000]  # NOTIFY payloads stop at 8000 bytes
    target.execute(text("SELECT pg_notify(:channel, :payload)"),
                   {"channel": CHANNEL, "payload": payload})


Callback = Callable[[str], None]
RunInThread = Callable[..., Awaitable[Any]]


class ChangeListener:
    """One listening connection per process; callbacks run on the worker threads."""

    def __init__(self, database_url: str, *, run: RunInThread,
                 reconnect_max_seconds: float = 5.0) -> None:
        url = make_url(database_url)
        self.enabled = url.get_backend_name() == "postgresql"
        # libpq understands the URL without SQLAlchemy's "+driver" suffix.
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._run = run
        self._reconnect_max = reconnect_max_seconds
        self._subscribers: dict[str, list[Callback]] = {}
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.received = 0

    def subscribe(self, topic: str, callback: Callback) -> None:
        self._subscribers.setdefault(topic, []).append(callback)

    async def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._listen(), name="notify-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        import psycopg

        delay = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True,
                                                             connect_timeout=5)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    delay = 0.1
                    await self._dispatch_all()  # whatever was sent while nobody listened
                    async for note in conn.notifies():
                        self.received += 1
                        await self._dispatch(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect; polling covers the gap
                log.warning("change listener disconnected (%s); polling until it reconnects",
                            type(exc).__name__)
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max)

    async def _dispatch(self, payload: str) -> None:
        topic, _, detail = payload.partition(":")
        for callback in self._subscribers.get(topic, []):
            await self._call(topic, callback, detail)

    async def _dispatch_all(self) -> None:
        for topic, callbacks in self._subscribers.items():
            for callback in callbacks:
                await self._call(topic, callback, "")

    async def _call(self, topic: str, callback: Callback, detail: str) -> None:
        try:
            await self._run(callback, detail)
        except Exception:  # noqa: BLE001 - one cache failing must not stop the others
            log.exception("handling change %s failed", topic)
