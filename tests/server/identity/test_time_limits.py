"""Lifetimes the provider enforces, seen over HTTP with the server's clock moved forward: codes
(60 s), pushed request URIs (60 s, below FAPI's 600 s), sessions (1 h idle, 24 h in all), and DPoP
nonces (a proof without the server's nonce is answered with a fresh one)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

from tests.server.identity.harness import Browser, Citizen, IdentityServer, callback_params
from tests.server.identity.raw import RawClient, logged_in_browser
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki


class Clock:
    """The real time, moved forward by ``offset``."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def idp(pki: TestPki, postgres_templates: PostgresTemplates, clock: Clock,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityServer]:
    directory = tmp_path_factory.mktemp("idp-time")
    with fresh_database("sqlite", postgres_templates, directory) as db:
        with IdentityServer(pki, directory, db.url.render_as_string(False),
                            clock=clock) as server:
            yield server


@pytest.fixture
def hcm(idp: IdentityServer, clock: Clock) -> Iterator[RawClient]:
    clock.offset = dt.timedelta(0)
    client = RawClient(idp, "dvc-hcm")
    yield client
    client.close()
    clock.offset = dt.timedelta(0)


def later(clock: Clock, client: RawClient, seconds: float) -> None:
    """Move the server's clock and the client's (which signs assertions and proofs) together."""
    clock.offset += dt.timedelta(seconds=seconds)
    client.offset = clock.offset


def silent_code(hcm: RawClient, browser: Browser) -> dict[str, str]:
    r = hcm.par(prompt="none")
    assert r.status_code == 201, r.text
    return callback_params(browser.http.get(hcm.authorize_url(r.json()["request_uri"])))


def test_code_lives_at_most_60_seconds(idp: IdentityServer, clock: Clock,
                                       hcm: RawClient) -> None:
    citizen: Citizen = idp.citizen("079084000901", totp=False, level2=False)
    browser, params = logged_in_browser(idp, hcm, citizen)
    try:
        later(clock, hcm, 55)
        assert hcm.redeem(params["code"]).status_code == 200  # within its lifetime
        params = silent_code(hcm, browser)
    finally:
        browser.close()
    later(clock, hcm, 61)
    r = hcm.redeem(params["code"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_pushed_request_uri_lives_under_600_seconds(idp: IdentityServer, clock: Clock,
                                                    hcm: RawClient) -> None:
    r = hcm.par()
    assert r.status_code == 201 and 0 < r.json()["expires_in"] < 600
    kept = hcm.par().json()["request_uri"]
    with httpx.Client() as http:
        later(clock, hcm, r.json()["expires_in"] - 5)
        fresh = http.get(hcm.authorize_url(r.json()["request_uri"]))
        assert fresh.status_code == 303 and fresh.headers["location"].startswith(
            idp.issuer + "/login")
        later(clock, hcm, 10)
        stale = http.get(hcm.authorize_url(kept))
    assert stale.status_code == 400 and "invalid_request_uri" in stale.text
    assert "location" not in stale.headers


def test_session_ends_after_an_idle_hour(idp: IdentityServer, clock: Clock,
                                         hcm: RawClient) -> None:
    citizen = idp.citizen("079084000902", totp=False, level2=False)
    browser, _ = logged_in_browser(idp, hcm, citizen)
    try:
        later(clock, hcm, 59 * 60)
        assert "code" in silent_code(hcm, browser)  # used: idle time starts again
        later(clock, hcm, 59 * 60)
        assert "code" in silent_code(hcm, browser)
        later(clock, hcm, 61 * 60)
        params = silent_code(hcm, browser)
    finally:
        browser.close()
    assert params["error"] == "login_required" and "code" not in params


def test_session_ends_after_24_hours_however_busy(idp: IdentityServer, clock: Clock,
                                                  hcm: RawClient) -> None:
    citizen = idp.citizen("079084000903", totp=False, level2=False)
    browser, _ = logged_in_browser(idp, hcm, citizen)
    try:
        for _ in range(28):  # used every 50 minutes: 23 h 20 min
            later(clock, hcm, 50 * 60)
            assert "code" in silent_code(hcm, browser)
        later(clock, hcm, 41 * 60)  # 24 h 1 min after the login
        params = silent_code(hcm, browser)
    finally:
        browser.close()
    assert params["error"] == "login_required" and "code" not in params


def test_dpop_proof_without_the_servers_nonce_gets_one(idp: IdentityServer,
                                                       hcm: RawClient) -> None:
    citizen = idp.citizen("079084000904", totp=False, level2=False)
    browser, params = logged_in_browser(idp, hcm, citizen)
    browser.close()
    hcm.nonce = None
    r = hcm.post("/token", {"grant_type": "authorization_code", "code": params["code"],
                            "redirect_uri": hcm.c.redirect_uri, "code_verifier": hcm.verifier,
                            **hcm.auth()}, retry_nonce=False)
    assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"
    assert r.headers["dpop-nonce"]
    tokens = hcm.redeem(params["code"]).json()  # with the nonce: the code was not spent
    assert tokens["token_type"] == "DPoP"
    hcm.nonce = "not-a-nonce-of-this-server"
    url = idp.issuer + "/userinfo"
    info = hcm.http.get(url, headers={
        "authorization": "DPoP " + tokens["access_token"],
        "dpop": hcm.proof("GET", url, access_token=tokens["access_token"])})
    assert info.status_code == 401
    assert 'error="use_dpop_nonce"' in info.headers["www-authenticate"]
    assert info.headers["dpop-nonce"]
