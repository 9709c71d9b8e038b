"""Provider state kept in the database: its secrets, its signing keys (with rotation) and the
registered clients (from the configuration and from ``vnegov identity client add``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from sqlalchemy import insert, select, update

from server.audit import AuditEvent, append_events
from server.notify import CLIENTS, IDENTITY_KEYS, notify
from server.sealing import SecretBox, SecretUnavailable, is_sealed
from server.storage.db import Database
from server.storage.identity import BreachedPasswordRow, ClientRow, SecretRow
from server.storage.locking import locked
from server.storage.rows import insert_missing
from vnid.jose.keys import KeyRing, RotationPolicy, plan_rotation
from vnid.oauth2.clients import Client

__all__ = ["ClientDirectory", "KeyManager", "SqlBreachedPasswords", "load_secrets"]

SECRET_NAMES = ("pairwise_salt", "dpop_nonce", "totp_key", "key_passphrase")


def load_secrets(db: Database, now: dt.datetime, box: SecretBox | None = None
                 ) -> dict[str, bytes]:
    """The provider's secrets, created at random on first use (each 32 bytes).

    With a master key (``box``) they are stored sealed, each bound to its name; secrets stored
    before a master key was configured are sealed on the way. A sealed secret without the master
    key is an error, never a silent new secret (that would invalidate every session and key)."""
    values: dict[str, bytes] = {}
    with db.write() as session:
        rows = {name: bytes(value) for name, value in
                session.execute(select(SecretRow.name, SecretRow.value)).all()}
        for name in SECRET_NAMES:
            context = f"identity/{name}"
            stored = rows.get(name)
            if stored is None:
                # Replicas starting together on a new database race to create the secrets: the
                # first one's value is kept, and every replica reads that one back.
                value = os.urandom(32)
                insert_missing(session, SecretRow, {
                    "name": name, "value": box.seal(value, context) if box else value,
                    "created_at": now}, ["name"])
                stored = bytes(session.execute(select(SecretRow.value).where(
                    SecretRow.name == name)).scalar_one())
            if is_sealed(stored):
                if box is None:
                    raise SecretUnavailable(f"the identity secret {name!r} is sealed and no "
                                            "master key is configured (secrets.key_file)")
                value = box.open(stored, context)
            else:
                value = stored
                if box is not None:
                    session.execute(update(SecretRow).where(SecretRow.name == name)
                                    .values(value=box.seal(value, context)))
            values[name] = value
    return values


class KeyManager:
    """Keeps the :class:`KeyRing` in memory; :meth:`rotate` applies the rotation policy (under a
    row lock, so replicas never rotate twice) and reloads."""

    def __init__(self, db: Database, policy: RotationPolicy, passphrase: bytes) -> None:
        self._db = db
        self._policy = policy
        self._passphrase = passphrase
        self._ring: KeyRing | None = None

    @property
    def ring(self) -> KeyRing:
        assert self._ring is not None, "keys not loaded"
        return self._ring

    def rotate(self, now: dt.datetime) -> list[str]:
        from server.identity.store import SqlTransaction

        changes: list[str] = []
        with self._db.write() as session:
            session.execute(locked(select(SecretRow.name).where(
                SecretRow.name == "key_passphrase"))).all()
            tx = SqlTransaction(session, self._db.dialect)
            records = tx.signing_keys()
            changed, deleted = plan_rotation(records, now=now, policy=self._policy,
                                             passphrase=self._passphrase)
            for record in changed:
                tx.save_signing_key(record)
                changes.append(f"{record.kid}:{record.state.value}")
            for kid in deleted:
                tx.delete_signing_key(kid)
                changes.append(f"{kid}:deleted")
            # The first keys of a new installation are part of setting it up, not an event;
            # every later rotation is audited.
            if changes and records:
                append_events(session, [AuditEvent(
                    at=now, request_id="-", caller="identity", kind="identity",
                    action="keys.rotate", outcome="OK", details={"changes": ",".join(changes)})])
            if changes:  # every replica reloads its key ring at once
                notify(session, IDENTITY_KEYS, ",".join(changes))
            records = tx.signing_keys()
        self._ring = KeyRing(records, self._passphrase)
        return changes

    def reload(self) -> None:
        from server.identity.store import SqlTransaction

        with self._db.read() as session:
            records = SqlTransaction(session, self._db.dialect) \
                .signing_keys()
        self._ring = KeyRing(records, self._passphrase)


class ClientDirectory:
    """Clients from the configuration (fixed) and the database (cached for ``ttl`` seconds)."""

    def __init__(self, db: Database, configured: tuple[Client, ...], ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._configured = {c.client_id: c for c in configured}
        self._ttl = ttl
        self._clock = clock
        self._stored: Mapping[str, Client] = {}
        self._loaded_at = -1e9
        self._lock = threading.Lock()

    def get(self, client_id: str) -> Client | None:
        found = self._configured.get(client_id)
        if found is not None:
            return found
        if self._clock() - self._loaded_at > self._ttl:
            self.refresh()
        return self._stored.get(client_id)

    def invalidate(self) -> None:
        """Forget the stored clients: the next lookup reads them again (a replica changed one)."""
        self._loaded_at = -1e9

    def refresh(self) -> None:
        with self._lock:
            with self._db.read() as session:
                rows = session.execute(select(ClientRow.client_id, ClientRow.client_metadata)
                                       .where(ClientRow.disabled.is_(False))).all()
            self._stored = {r.client_id: Client.from_metadata(json.loads(r.client_metadata))
                            for r in rows}
            self._loaded_at = self._clock()

    def all(self) -> list[Client]:
        self.refresh()
        merged = {**self._stored, **self._configured}
        return [merged[k] for k in sorted(merged)]

    @staticmethod
    def save(db: Database, client: Client, now: dt.datetime, *, actor: str) -> None:
        data = json.dumps(client.as_metadata(), sort_keys=True)
        with db.write() as session:
            done = session.execute(update(ClientRow).where(
                ClientRow.client_id == client.client_id).values(
                client_metadata=data, disabled=False, updated_at=now))
            if not done.rowcount:  # type: ignore[attr-defined]
                session.execute(insert(ClientRow).values(
                    client_id=client.client_id, client_metadata=data, disabled=False,
                    created_at=now, updated_at=now))
            append_events(session, [AuditEvent(
                at=now, request_id="-", caller=actor, kind="identity", action="client.register",
                outcome="OK", details={"client_id": client.client_id,
                                       "profile": client.profile.value})])
            notify(session, CLIENTS, client.client_id)

    @staticmethod
    def disable(db: Database, client_id: str, now: dt.datetime, *, actor: str) -> bool:
        with db.write() as session:
            done = session.execute(update(ClientRow).where(
                ClientRow.client_id == client_id).values(disabled=True, updated_at=now))
            if done.rowcount:  # type: ignore[attr-defined]
                append_events(session, [AuditEvent(
                    at=now, request_id="-", caller=actor, kind="identity",
                    action="client.disable", outcome="OK", details={"client_id": client_id})])
                notify(session, CLIENTS, client_id)
            return bool(done.rowcount)  # type: ignore[attr-defined]


class SqlBreachedPasswords:
    """Implements :class:`vnid.authn.passwords.BreachedPasswords` on the imported digests."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def is_breached(self, password: str) -> bool:
        import hashlib

        digest = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).digest()
        with self._db.read() as session:
            return session.execute(select(BreachedPasswordRow.sha1).where(
                BreachedPasswordRow.sha1 == digest)).first() is not None

    @staticmethod
    def load(db: Database, lines: Iterable[bytes], *, batch: int = 10000) -> int:
        """Import "Pwned Passwords" lines (40 hex digits, optionally ``:count``); returns how
        many digests were added."""
        from vnid.authn.passwords import parse_sha1_lines

        added = 0
        chunk: list[bytes] = []

        def flush() -> int:
            digests = sorted(set(chunk))
            chunk.clear()
            if not digests:
                return 0
            with db.write() as session:
                known = set(session.execute(select(BreachedPasswordRow.sha1).where(
                    BreachedPasswordRow.sha1.in_(digests))).scalars())
                fresh = [{"sha1": d} for d in digests if d not in known]
                if fresh:
                    session.execute(insert(BreachedPasswordRow), fresh)
            return len(fresh)

        for line in lines:
            chunk.extend(parse_sha1_lines(line))
            if len(chunk) >= batch:
                added += flush()
        return added + flush()
