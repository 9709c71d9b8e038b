"""Lifetimes the provider enforces, seen over HTTP with the server's clock moved forward: codes
(60 s), pushed request URIs (60 s, below FAPI's 600 s), sessions (1 h idle, 24 h in all), DPoP
nonces (a proof without the server's nonce is answered with a fresh one), and the lockout after
repeated failures (temporary, audited)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select

from server.storage.audit import AuditEventRow
from tests.server.identity.harness import Browser, Citizen, IdentityServer, callback_params
from tests.server.identity.raw import RawClient, logged_in_browser
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki
from vnid.authn.throttle import ThrottleState


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
            server.db = db  # type: ignore[attr-defined]
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


def audit(idp: IdentityServer, account_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(action, reason, details) of the account's audit events."""
    with idp.db.read() as s:  # type: ignore[attr-defined]
        rows = s.execute(select(AuditEventRow.action, AuditEventRow.reason,
                                AuditEventRow.details)).all()
    return [(a, o, json.loads(d)) for a, o, d in rows
            if json.loads(d).get("account_id") == account_id]


def forget_address(idp: IdentityServer) -> None:
    with idp.provider.core.store.transaction() as tx:  # let the other tests log in again
        tx.set_throttle("address:127.0.0.1", ThrottleState())


def test_account_lockout_is_temporary_and_audited(idp: IdentityServer, clock: Clock,
                                                  hcm: RawClient) -> None:
    """Defaults: 3 free failures, then back-off doubling from 2 s to 5 min; the 10th consecutive
    failure locks the account out for 30 min, even for the right password."""
    citizen = idp.citizen("079084000905", totp=False, level2=False)
    policy = idp.provider.settings.throttle_account
    assert (policy.free_attempts, policy.lockout_after) == (3, 10)
    browser = Browser(idp.issuer)

    def attempt(password: str) -> str:
        r = hcm.par()
        browser.go(hcm.authorize_url(r.json()["request_uri"]))
        browser.post("/login", {"identifier": citizen.identifier, "password": password})
        return browser.page

    try:
        for i in range(policy.lockout_after):
            assert "không đúng" in attempt("sai-mat-khau-" + str(i))
            if i == policy.free_attempts:  # the first failure that costs: blocked for a while
                assert re.search(r"thử lại sau \d+ giây", attempt(citizen.password))
            later(clock, hcm, 6 * 60)  # beyond the longest back-off
        assert re.search(r"thử lại sau \d+ giây", attempt(citizen.password))  # locked out
        later(clock, hcm, 25 * 60)  # 31 min after the lockout
        assert 'id="consent-allow"' in attempt(citizen.password)
    finally:
        browser.close()
        forget_address(idp)
    events = audit(idp, citizen.account_id)
    assert [(a, d["key"]) for a, o, d in events if o == "LOCKED_OUT"] == [
        ("login.lockout", "account")]
    throttled = [d for a, o, d in events if a == "login.password" and o == "THROTTLED"]
    assert len(throttled) == 2 and all(d["key"] == "account" and d["remote"] == "127.0.0.1"
                                       for d in throttled)
    assert sum(o == "INVALID_CREDENTIALS" for _, o, _ in events) == policy.lockout_after


def test_wrong_second_factor_codes_are_throttled_and_audited(idp: IdentityServer,
                                                             hcm: RawClient) -> None:
    citizen = idp.citizen("079084000906")
    browser = Browser(idp.issuer)
    try:
        r = hcm.par(acr_values="LoA2")
        browser.go(hcm.authorize_url(r.json()["request_uri"]))
        browser.post("/login", {"identifier": citizen.identifier, "password": citizen.password})
        assert 'name="otp"' in browser.page
        for _ in range(idp.provider.settings.throttle_account.free_attempts + 1):
            browser.post("/login/otp", {"otp": "000000"})
            assert "Mã xác thực không đúng" in browser.page
        browser.post("/login/otp", {"otp": citizen.otp()})
        assert re.search(r"thử lại sau \d+ giây", browser.page)
    finally:
        browser.close()
        forget_address(idp)
    events = audit(idp, citizen.account_id)
    assert [o for a, o, _ in events if a == "login.totp"] == ["INVALID_CREDENTIALS"] * 4 + [
        "THROTTLED"]


def test_step_up_counts_the_sessions_factors_only_while_it_lives(
        idp: IdentityServer, clock: Clock, hcm: RawClient) -> None:
    """A password session asked for LoA2 is stepped up with the second factor alone; if the session
    dies (here: an idle hour) while the second-factor page is open, its password counts no more."""
    for identifier, idle in (("079084000907", False), ("079084000908", True)):
        citizen = idp.citizen(identifier)
        browser, _ = logged_in_browser(idp, hcm, citizen)  # LoA1: password only
        try:
            later(clock, hcm, 50 * 60)
            start = hcm.par(acr_values="LoA2")
            browser.go(hcm.authorize_url(start.json()["request_uri"]))
            assert 'name="otp"' in browser.page and 'name="password"' not in browser.page
            if idle:
                later(clock, hcm, 11 * 60)  # 61 min since the session was last used
            totp = pyotp.TOTP(citizen.totp_secret)  # codes of the server's time
            response = browser.post("/login/otp", {"otp": totp.at(clock())})
            if not idle:
                params = callback_params(response)
                claims = hcm.redeem(params["code"]).json()
                assert "id_token" in claims
                continue
            assert response.status_code == 200 and 'name="password"' in browser.page
            assert "Phiên đăng nhập đã kết thúc" in browser.page
            browser.post("/login", {"identifier": citizen.identifier,
                                    "password": citizen.password})
            response = browser.post("/login/otp", {"otp": totp.at(clock() + dt.timedelta(
                seconds=30))})  # the next step: each is accepted once
            assert hcm.redeem(callback_params(response)["code"]).status_code == 200
        finally:
            browser.close()
    assert ("login.refused", "SESSION_ENDED") in [(a, r) for a, r, _ in audit(
        idp, citizen.account_id)]
