"""Protocol requests on SQLite are tried on the event loop; one that would wait for the database's
write lock (held by another writer) runs on a thread instead, and the event loop goes on serving
other requests meanwhile."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from server.identity.store import SqlStore
from tests.server.identity.harness import Citizen, IdentityServer, callback_params
from tests.server.identity.raw import RawClient, logged_in_browser


@pytest.fixture
def threads(idp: IdentityServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads on which the store's write transactions start."""
    store = idp.provider.core.store
    assert isinstance(store, SqlStore)
    names: list[str] = []
    transaction = store.transaction

    def recording(*args: Any, **kwargs: Any) -> Any:
        names.append(threading.current_thread().name)
        return transaction(*args, **kwargs)

    monkeypatch.setattr(store, "transaction", recording)
    return names


@contextmanager
def write_lock_held(idp: IdentityServer) -> Iterator[None]:
    """Another writer (another process, say) holds SQLite's write lock."""
    database = make_url(idp.config.storage.url).database
    assert database
    other = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
    finally:
        other.rollback()
        other.close()


def while_locked(idp: IdentityServer, threads: list[str],
                 request: Callable[[], httpx.Response]) -> httpx.Response:
    """``request`` sent while the write lock is held: it may only finish after the lock is
    released, and the server answers others while it waits."""
    answer: list[httpx.Response] = []
    threads.clear()
    with write_lock_held(idp):
        sender = threading.Thread(target=lambda: answer.append(request()))
        sender.start()
        deadline = time.monotonic() + 10
        while not any(n.startswith("identity-http") for n in threads):
            assert time.monotonic() < deadline, threads
            time.sleep(0.01)
        # Tried on the event loop first, given up, and started again on a thread (which waits).
        assert threads[0] == "identity-server", threads
        with httpx.Client(timeout=2) as other:
            for path in ("/healthz", "/id/jwks"):
                started = time.monotonic()
                assert other.get(idp.base + path).status_code == 200
                assert time.monotonic() - started < 1
        time.sleep(0.2)
        assert sender.is_alive() and not answer
    sender.join(10)
    assert answer
    return answer[0]


def test_requests_that_would_wait_for_the_lock_move_off_the_event_loop(
        idp: IdentityServer, citizen: Citizen, threads: list[str]) -> None:
    client = RawClient(idp, "dvc-hcm")
    browser, params = logged_in_browser(idp, client, citizen)
    try:
        assert client.redeem(params["code"]).status_code == 200

        # Unhindered, the protocol endpoints run on the event loop.
        threads.clear()
        r = client.par()
        assert r.status_code == 201, r.text
        assert threads == ["identity-server"]

        r = while_locked(idp, threads, client.par)
        assert r.status_code == 201, r.text  # its assertion and proof were not spent by the try
        url = client.authorize_url(r.json()["request_uri"])
        code = callback_params(while_locked(idp, threads, lambda: browser.http.get(url)))["code"]
        r = while_locked(idp, threads, lambda: client.redeem(code))
        assert r.status_code == 200, r.text
        access = r.json()["access_token"]
        r = while_locked(idp, threads, lambda: client.userinfo(access))
        assert r.status_code == 200, r.text
        assert r.json()["sub"]
    finally:
        browser.close()
        client.close()
