"""Single sign-on across two provincial systems (the example app), prompt=none, RP-initiated logout
and back-channel logout to every relying party of the session; QR login from the citizen app."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.server.identity.apps import ProvincialApp
from tests.server.identity.harness import Browser, CitizenApp, IdentityServer
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki


@pytest.fixture(scope="module")
def apps() -> tuple[ProvincialApp, ProvincialApp]:
    return (ProvincialApp("prov-hcm", "Cổng dịch vụ công TP. Hồ Chí Minh"),
            ProvincialApp("prov-hanoi", "Cổng dịch vụ công Hà Nội"))


@pytest.fixture(scope="module")
def idp(pki: TestPki, postgres_templates: PostgresTemplates,
        tmp_path_factory: pytest.TempPathFactory,
        apps: tuple[ProvincialApp, ProvincialApp]) -> Iterator[IdentityServer]:
    directory = tmp_path_factory.mktemp("idp-sso")
    with fresh_database("sqlite", postgres_templates, directory) as db:
        server = IdentityServer(pki, directory, db.url.render_as_string(False),
                                clients=lambda s: [a.register(s) for a in apps])
        with server:
            for app in apps:
                app.start(server)
            try:
                yield server
            finally:
                for app in apps:
                    app.stop()


class WebBrowser:
    """Follows every redirect, across the provider and the applications (one cookie jar)."""

    def __init__(self) -> None:
        self.http = httpx.Client(follow_redirects=True, timeout=15)
        self.page = ""

    def close(self) -> None:
        self.http.close()

    def get(self, url: str) -> httpx.Response:
        r = self.http.get(url)
        self.page = r.text
        return r

    def submit(self, path_url: str, data: dict[str, str]) -> httpx.Response:
        csrf = re.search(r'name="csrf" value="([^"]+)"', self.page)
        assert csrf, self.page[:400]
        r = self.http.post(path_url, data={"csrf": csrf.group(1), **data})
        self.page = r.text
        return r


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_one_session_two_systems_and_backchannel_logout(
        idp: IdentityServer, apps: tuple[ProvincialApp, ProvincialApp]) -> None:
    hcm, hanoi = apps
    citizen = idp.citizen("079084000555")
    web = WebBrowser()
    try:
        web.get(hcm.base + "/login")
        assert "Đăng nhập" in web.page and hcm.title in web.page
        web.submit(idp.issuer + "/login", {"identifier": citizen.identifier,
                                           "password": citizen.password})
        web.submit(idp.issuer + "/consent", {"decision": "allow"})
        assert 'id="status">Đã đăng nhập' in web.page
        assert citizen.identifier in web.page  # SoDinhDanh shown by the application

        # The second system: no password, only its own consent.
        web.get(hanoi.base + "/login")
        assert 'name="password"' not in web.page and hanoi.title in web.page
        web.submit(idp.issuer + "/consent", {"decision": "allow"})
        assert 'id="status">Đã đăng nhập' in web.page
        hcm_sid = next(iter(hcm.state.sessions.values()))[0].id_claims["sid"]
        hanoi_sid = next(iter(hanoi.state.sessions.values()))[0].id_claims["sid"]
        assert hcm_sid == hanoi_sid  # one provider session

        # Logout at one logs out both, through back-channel logout tokens.
        web.get(hcm.base + "/logout")
        assert 'id="status">Đã đăng xuất' in web.page
        wait_for(lambda: not hanoi.state.sessions and hcm_sid in hanoi.state.logouts)
        assert hcm_sid in hcm.state.logouts
        web.get(hanoi.base + "/")
        assert "Chưa đăng nhập" in web.page
        # And the provider session is gone: the next login asks for the password again.
        web.get(hanoi.base + "/login")
        assert 'name="password"' in web.page
    finally:
        web.close()


def test_prompt_none_uses_the_live_session(idp: IdentityServer,
                                           apps: tuple[ProvincialApp, ProvincialApp]) -> None:
    hcm, _ = apps
    citizen = idp.citizen("079084000556")
    rp = hcm.state.rp
    now = dt.datetime.now(dt.UTC)
    browser = Browser(idp.issuer)
    try:
        url, pending = rp.start_login(now=now, prompt="none")
        r = browser.http.get(url)
        params = dict(httpx.URL(r.headers["location"]).params)
        assert params["error"] == "login_required" and params["iss"] == idp.issuer
        url, pending = rp.start_login(now=now)
        browser.go(url)
        r = browser.login(citizen, otp=False)
        rp.finish_login(dict(httpx.URL(r.headers["location"]).params), pending, now=now)
        url, pending = rp.start_login(now=now, prompt="none")
        r = browser.http.get(url)
        tokens = rp.finish_login(dict(httpx.URL(r.headers["location"]).params), pending, now=now)
        assert tokens.id_claims["sub"]
    finally:
        browser.close()


def test_qr_login_with_the_citizen_app(idp: IdentityServer,
                                       apps: tuple[ProvincialApp, ProvincialApp]) -> None:
    hcm, _ = apps
    citizen = idp.citizen("079084000557", totp=False)
    app = CitizenApp(idp.issuer)
    code = idp.provider.devices.create_enrolment(citizen.account_id, dt.datetime.now(dt.UTC))
    web = WebBrowser()
    try:
        app.enrol(web.http, code)
        web.get(hcm.base + "/login?level=2")
        qr_id = re.search(r'id="qr-payload">[^<]*id=([A-Za-z0-9_-]+)<', web.page)
        number = re.search(r'id="qr-number">(\d+)<', web.page)
        assert qr_id and number
        status = idp.base + "/id/login/qr/status"
        approved = app.approve(web.http, qr_id.group(1), code=number.group(1))
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        assert web.http.get(status).json()["status"] == "approved"
        web.submit(idp.issuer + "/login/qr", {})
        web.submit(idp.issuer + "/consent", {"decision": "allow"})
        assert 'id="status">Đã đăng nhập (mức LoA2)' in web.page
        tokens = next(iter(hcm.state.sessions.values()))[0]
        assert set(tokens.id_claims["amr"]) == {"swk", "pin", "mfa"}
    finally:
        web.close()


def test_qr_with_the_wrong_number_is_refused(idp: IdentityServer,
                                             apps: tuple[ProvincialApp, ProvincialApp]) -> None:
    hcm, _ = apps
    citizen = idp.citizen("079084000558", totp=False)
    app = CitizenApp(idp.issuer)
    web = WebBrowser()
    try:
        app.enrol(web.http, idp.provider.devices.create_enrolment(citizen.account_id,
                                                                  dt.datetime.now(dt.UTC)))
        web.get(hcm.base + "/login?level=2")
        qr_id = re.search(r'id="qr-payload">[^<]*id=([A-Za-z0-9_-]+)<', web.page)
        number = re.search(r'id="qr-number">(\d+)<', web.page)
        assert qr_id and number
        wrong = str((int(number.group(1)) - 9) % 90 + 10)
        refused = app.approve(web.http, qr_id.group(1), code=wrong)
        assert refused.json()["status"] == "denied"
        assert web.http.get(idp.issuer + "/login/qr/status").json()["status"] == "denied"
        web.submit(idp.issuer + "/login/qr", {})
        assert "Chưa có xác nhận" in web.page  # still on the login page, no code issued
    finally:
        web.close()


def test_locking_an_account_logs_it_out_everywhere(
        idp: IdentityServer, apps: tuple[ProvincialApp, ProvincialApp]) -> None:
    hcm, _ = apps
    citizen = idp.citizen("079084000559", totp=False)
    web = WebBrowser()
    try:
        web.get(hcm.base + "/login")
        web.submit(idp.issuer + "/login", {"identifier": citizen.identifier,
                                           "password": citizen.password})
        if 'id="consent-allow"' in web.page:
            web.submit(idp.issuer + "/consent", {"decision": "allow"})
        assert 'id="status">Đã đăng nhập' in web.page
        sid = next(t for t, profile in hcm.state.sessions.values()
                   if profile.get("SoDinhDanh") == citizen.identifier).id_claims["sid"]
        idp.admin.lock(citizen.account_id, "thẻ bị mất", dt.datetime.now(dt.UTC))
        wait_for(lambda: sid in hcm.state.logouts)
        web.get(hcm.base + "/login")
        assert 'name="password"' in web.page  # the provider session is gone too
    finally:
        web.close()
