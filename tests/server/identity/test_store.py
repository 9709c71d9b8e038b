"""The storage adapter on SQLite and PostgreSQL: the atomic single-use operations, and that a
failed request still leaves its audit trail and spends its one-time values."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from server.identity.store import SqlStore, TotpSealer, WouldBlock
from server.storage.audit import AuditEventRow
from server.storage.db import Database
from vnid.accounts import AccountKind, new_account
from vnid.assurance import Amr, AssuranceLevel
from vnid.authn.device import DeviceKey
from vnid.oidc.ports import IdentityEvent
from vnid.oidc.records import (
    AuthorizationCode,
    AuthorizationRequest,
    ProviderSession,
    TokenKind,
    TokenRecord,
)
from vnid.personal_id import Sex

NOW = dt.datetime(2025, 7, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(db: Database) -> SqlStore:
    return SqlStore(db, TotpSealer(os.urandom(32)), clock=lambda: NOW)


def code(grant: str = "g1") -> AuthorizationCode:
    return AuthorizationCode(
        code_hash="h1", client_id="c", account_id="a", sid="s", redirect_uri="https://r/cb",
        scope=frozenset({"openid"}), claims_scope=frozenset(), nonce="n", code_challenge="x",
        dpop_jkt="", auth_time=NOW, level=AssuranceLevel.LOA2, methods=(Amr.PWD, Amr.OTP),
        issued_at=NOW, expires_at=NOW + dt.timedelta(seconds=60), grant_id=grant)


def token(h: str, kind: TokenKind = TokenKind.ACCESS, grant: str = "g1", sid: str = "s",
          scope: frozenset[str] = frozenset({"openid"})) -> TokenRecord:
    return TokenRecord(token_hash=h, kind=kind, client_id="c", grant_id=grant, scope=scope,
                       issued_at=NOW, expires_at=NOW + dt.timedelta(minutes=10), account_id="a",
                       sid=sid)


def test_replay_guard_remembers_once(store: SqlStore) -> None:
    with store.transaction() as tx:
        assert tx.first_use("dpop", "jkt\x00jti", NOW)
        assert not tx.first_use("dpop", "jkt\x00jti", NOW)
        assert tx.first_use("client_assertion", "jkt\x00jti", NOW)


def test_codes_are_single_use(store: SqlStore) -> None:
    with store.transaction() as tx:
        tx.put_code(code())
    with store.transaction() as tx:
        first, reused = tx.take_code("h1", NOW)
        assert first == code() and not reused
    with store.transaction() as tx:
        again, reused = tx.take_code("h1", NOW)
        assert again == code() and reused
        assert tx.take_code("nope", NOW) == (None, False)


def test_pushed_requests_are_single_use_and_expire(store: SqlStore) -> None:
    request = AuthorizationRequest(client_id="c", redirect_uri="https://r/cb",
                                   scope=frozenset({"openid"}), min_level=AssuranceLevel.LOA2)
    with store.transaction() as tx:
        tx.put_pushed("p1", request, NOW + dt.timedelta(seconds=60))
        tx.put_pushed("p2", request, NOW + dt.timedelta(seconds=60))
    with store.transaction() as tx:
        assert tx.take_pushed("p1", NOW) == request
        assert tx.take_pushed("p1", NOW) is None
        assert tx.take_pushed("p2", NOW + dt.timedelta(seconds=61)) is None


def test_a_failed_statement_rolls_back_its_transaction(store: SqlStore) -> None:
    request = AuthorizationRequest(client_id="c", redirect_uri="https://r/cb",
                                   scope=frozenset({"openid"}), min_level=AssuranceLevel.LOA2)
    with store.transaction() as tx:
        tx.put_pushed("p1", request, NOW + dt.timedelta(seconds=60))
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        with store.transaction() as tx:
            tx.put_token(token("t1"))
            tx.put_pushed("p1", request, NOW + dt.timedelta(seconds=60))
    with store.transaction() as tx:
        assert tx.token("t1") is None
        tx.put_token(token("t2"))
    with store.transaction() as tx:
        assert tx.token("t2") is not None
        assert tx.take_pushed("p1", NOW) == request


def test_refresh_rotation_and_grant_revocation(store: SqlStore) -> None:
    with store.transaction() as tx:
        tx.put_token(token("a1"))
        tx.put_token(token("r1", TokenKind.REFRESH))
        tx.put_token(token("a2", grant="other"))
    with store.transaction() as tx:
        assert tx.use_refresh("r1", NOW) and not tx.use_refresh("r1", NOW)
        assert tx.revoke_grant("g1", NOW) == 2
        assert tx.token("a1").revoked_at == NOW  # type: ignore[union-attr]
        assert tx.token("a2").revoked_at is None  # type: ignore[union-attr]


def test_session_logout_keeps_offline_tokens(store: SqlStore) -> None:
    with store.transaction() as tx:
        tx.put_token(token("a1"))
        tx.put_token(token("r1", TokenKind.REFRESH, scope=frozenset({"openid",
                                                                     "offline_access"})))
        assert tx.revoke_session_tokens("s", NOW, keep_offline=True) == 1
        assert tx.token("r1").revoked_at is None  # type: ignore[union-attr]


def test_sessions_upsert_by_sid(store: SqlStore) -> None:
    session = ProviderSession(key_hash="k1", sid="s1", account_id="a", created_at=NOW,
                              last_seen_at=NOW, auth_time=NOW, level=AssuranceLevel.LOA1,
                              methods=(Amr.PWD,))
    with store.transaction() as tx:
        tx.put_session(session)
        stepped = ProviderSession(key_hash="k2", sid="s1", account_id="a", created_at=NOW,
                                  last_seen_at=NOW, auth_time=NOW, level=AssuranceLevel.LOA2,
                                  methods=(Amr.OTP, Amr.PWD))
        tx.put_session(stepped)
        assert tx.session("k1") is None and tx.session("k2") == stepped
        assert tx.end_session("s1", NOW) and not tx.end_session("s1", NOW)


def test_accounts_read_alike_by_id_and_by_identifier(store: SqlStore) -> None:
    account = dataclasses.replace(
        new_account(account_id="acc", kind=AccountKind.CITIZEN, identifier="079084000123",
                    full_name="Nguyễn Văn An", now=NOW, date_of_birth=dt.date(1984, 5, 17),
                    sex=Sex.MALE, province_code="79"),
        level=AssuranceLevel.LOA2, card_valid_until=dt.date(2031, 5, 17))
    with store.transaction() as tx:
        tx.save_account(account)
    with store.transaction() as tx:
        assert tx.account("acc") == tx.account_by_identifier("079084000123") == account
        assert tx.account("nobody") is None


def test_one_active_device_per_account(store: SqlStore) -> None:
    account = new_account(account_id="acc", kind=AccountKind.CITIZEN, identifier="079084000123",
                          full_name="A", now=NOW, date_of_birth=dt.date(1984, 1, 1),
                          sex=Sex.MALE)
    jwk = {"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}
    with store.transaction() as tx:
        tx.save_account(account)
        assert tx.add_device(DeviceKey("d1", "acc", jwk, "t1", "old", NOW)) == []
        assert tx.add_device(DeviceKey("d2", "acc", jwk, "t2", "new", NOW)) == ["d1"]
        assert tx.active_device("acc").device_id == "d2"  # type: ignore[union-attr]
        tx.set_totp("acc", "JBSWY3DPEHPK3PXP", NOW)
        assert tx.totp("acc") == ("JBSWY3DPEHPK3PXP", None)


def test_failed_request_keeps_its_failures_and_spent_values(store: SqlStore,
                                                           db: Database) -> None:
    with pytest.raises(RuntimeError):
        with store.transaction(request_id="req-12345678") as tx:
            tx.first_use("client_assertion", "c\x00jti-1", NOW + dt.timedelta(minutes=2))
            tx.record(IdentityEvent(action="login.password", outcome="INVALID_CREDENTIALS"))
            tx.record(IdentityEvent(action="session.start"))
            raise RuntimeError("the request fails later")
    with store.transaction() as tx:
        assert not tx.first_use("client_assertion", "c\x00jti-1", NOW)
    with db.read() as s:
        rows = s.execute(select(AuditEventRow.action, AuditEventRow.outcome,
                                AuditEventRow.reason)).all()
    assert [tuple(r) for r in rows] == [("login.password", "FAILED", "INVALID_CREDENTIALS")]


def _hold_write_lock(db: Database) -> sqlite3.Connection:
    """Another writer (another process, say) holding SQLite's write lock."""
    other = sqlite3.connect(db.url.database or "", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_an_attempt_that_would_wait_gives_up_before_writing(sqlite_db: Database) -> None:
    store = SqlStore(sqlite_db, TotpSealer(os.urandom(32)), clock=lambda: NOW)
    ran: list[str] = []

    def work() -> str:
        try:
            with store.transaction() as tx:
                tx.first_use("dpop", "k\x00jti-1", NOW + dt.timedelta(minutes=2))
                ran.append("first")
        except WouldBlock:
            # A failing request spends its values in a second transaction: that one gives up too.
            with store.transaction() as tx:
                tx.first_use("dpop", "k\x00jti-1", NOW + dt.timedelta(minutes=2))
                ran.append("second")
        return "done"

    other = _hold_write_lock(sqlite_db)
    with pytest.raises(WouldBlock):
        store.attempt(work)
    other.rollback()
    assert ran == []
    with sqlite_db.engine.connect() as connection:  # the busy timeout is back on the pool
        raw = connection.connection.driver_connection
        assert raw is not None
        assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    # The store's own lock held by a thread counts the same, and the replay value is unspent.
    with store._lock:  # type: ignore[attr-defined]
        with pytest.raises(WouldBlock):
            store.attempt(work)
    assert ran == []
    assert store.attempt(work) == "done"
    assert ran == ["first"]


def test_an_attempt_waits_for_a_transaction_that_ends_soon(sqlite_db: Database) -> None:
    # Another worker process (here: another connection to the file) or another thread holds the
    # write lock for a moment: the attempt waits for it on its own thread instead of giving up
    # and running the whole step again elsewhere. Waiting stays bounded (attempt_wait).
    store = SqlStore(sqlite_db, TotpSealer(os.urandom(32)), clock=lambda: NOW, attempt_wait=5.0)
    jti = iter(f"k\x00jti-{i}" for i in range(10))

    def work() -> bool:
        with store.transaction() as tx:
            return tx.first_use("dpop", next(jti), NOW + dt.timedelta(minutes=2))

    other = _hold_write_lock(sqlite_db)
    released = threading.Timer(0.2, other.rollback)
    released.start()
    began = time.monotonic()
    assert store.attempt(work)  # no WouldBlock: it waited for the other transaction
    assert time.monotonic() - began >= 0.15
    released.join()

    assert store._lock.acquire()  # type: ignore[attr-defined,union-attr]
    threading.Timer(0.2, store._lock.release).start()  # type: ignore[attr-defined,union-attr]
    assert store.attempt(work)

    # A holder that keeps the lock past attempt_wait still sends the step elsewhere, unwritten.
    store.attempt_wait = 0.05
    other = _hold_write_lock(sqlite_db)
    began = time.monotonic()
    with pytest.raises(WouldBlock):
        store.attempt(work)
    assert time.monotonic() - began < 4.0
    other.rollback()
    with store.transaction() as tx:  # the first two were spent, the abandoned one was not
        assert not tx.first_use("dpop", "k\x00jti-0", NOW)
        assert not tx.first_use("dpop", "k\x00jti-1", NOW)
        assert tx.first_use("dpop", "k\x00jti-2", NOW + dt.timedelta(minutes=2))


def test_an_attempt_whose_failure_record_would_wait_gives_up_too(
        sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqlStore(sqlite_db, TotpSealer(os.urandom(32)), clock=lambda: NOW)
    other = sqlite3.connect(sqlite_db.url.database or "", isolation_level=None,
                            check_same_thread=False)
    begin = store._begin  # type: ignore[attr-defined]
    calls: list[bool] = []

    @contextlib.contextmanager
    def second_finds_the_lock_held(nonblocking: bool) -> Iterator[Any]:
        calls.append(nonblocking)
        if len(calls) == 2:  # after the failed transaction rolled back
            other.execute("BEGIN IMMEDIATE")
        with begin(nonblocking) as connection:
            yield connection

    monkeypatch.setattr(store, "_begin", second_finds_the_lock_held)

    def work() -> None:
        with store.transaction(request_id="req-12345678") as tx:
            tx.first_use("dpop", "k\x00jti-2", NOW + dt.timedelta(minutes=2))
            tx.record(IdentityEvent(action="dpop.replay", outcome="INVALID_DPOP_PROOF"))
            raise RuntimeError("the request fails")

    with pytest.raises(WouldBlock):
        store.attempt(work)
    other.rollback()
    assert calls == [True, True]
    with sqlite_db.read() as s:
        assert s.execute(select(AuditEventRow.action)).all() == []
    with pytest.raises(RuntimeError):  # run again where it may wait: recorded as before
        work()
    with store.transaction() as tx:
        assert not tx.first_use("dpop", "k\x00jti-2", NOW)
    with sqlite_db.read() as s:
        assert [r.action for r in s.execute(select(AuditEventRow.action))] == ["dpop.replay"]


def test_later_transactions_of_an_attempt_wait(sqlite_db: Database) -> None:
    store = SqlStore(sqlite_db, TotpSealer(os.urandom(32)), clock=lambda: NOW)
    other: list[sqlite3.Connection] = []

    def work() -> bool:
        with store.transaction() as tx:
            assert tx.first_use("dpop", "k\x00a", NOW + dt.timedelta(minutes=2))
        other.append(_hold_write_lock(sqlite_db))
        threading.Timer(0.3, other[0].rollback).start()
        with store.transaction() as tx:  # waits for the lock instead of starting again
            return tx.first_use("dpop", "k\x00b", NOW + dt.timedelta(minutes=2))

    assert store.attempt(work)
    with store.transaction() as tx:
        assert not tx.first_use("dpop", "k\x00a", NOW)
        assert not tx.first_use("dpop", "k\x00b", NOW)


def test_expired_state_is_purged(store: SqlStore, db: Database) -> None:
    from server.identity.logout import purge_expired

    with store.transaction() as tx:
        tx.first_use("dpop", "old", NOW - dt.timedelta(seconds=1))
        tx.first_use("dpop", "fresh", NOW + dt.timedelta(minutes=1))
        tx.put_code(code())
        tx.put_token(token("a1"))
    later = NOW + dt.timedelta(days=2)
    assert purge_expired(db, later) == 4  # both jti, the code and the token, a day after expiry
    with store.transaction() as tx:
        assert tx.first_use("dpop", "fresh", later)


async def test_logout_delivery_retries_with_backoff(store: SqlStore, db: Database) -> None:
    from server.identity.logout import LogoutDelivery
    from server.storage.identity import LogoutDeliveryRow
    from tests.support.server import free_port

    with store.transaction() as tx:
        tx.enqueue_logout("c", f"http://127.0.0.1:{free_port()}/bc", "token", NOW)
    clock = [NOW]
    delivery = LogoutDelivery(db, attempts=3, clock=lambda: clock[0])
    try:
        assert await delivery.deliver_due() == 1  # nobody listens there
        assert await delivery.deliver_due() == 0  # not due again yet
        with db.read() as s:
            row = s.execute(select(LogoutDeliveryRow)).scalar_one()
        assert row.attempts == 1 and row.delivered_at is None and row.last_error
        assert row.next_attempt_at == NOW + dt.timedelta(seconds=5)
        clock[0] = NOW + dt.timedelta(seconds=6)
        assert await delivery.deliver_due() == 1
    finally:
        await delivery.close()
