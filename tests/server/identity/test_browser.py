"""A real browser (Debian's Chromium, headless, driven by Playwright) through the pages people use:
password + TOTP, single sign-on into a second provincial system, logout at one system ending both
through back-channel logout; then a QR login approved by a simulated citizen app that reads the QR
code off the screen and signs with its real device key."""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Page, sync_playwright

from tests.server.identity.apps import ProvincialApp
from tests.server.identity.harness import CitizenApp, IdentityServer
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki
from vnid.personal_id import Sex

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def apps() -> tuple[ProvincialApp, ProvincialApp]:
    return (ProvincialApp("web-hcm", "Cổng dịch vụ công TP. Hồ Chí Minh"),
            ProvincialApp("web-hanoi", "Cổng dịch vụ công Hà Nội"))


@pytest.fixture(scope="module")
def idp(pki: TestPki, postgres_templates: PostgresTemplates,
        tmp_path_factory: pytest.TempPathFactory,
        apps: tuple[ProvincialApp, ProvincialApp]) -> Iterator[IdentityServer]:
    directory = tmp_path_factory.mktemp("idp-browser")
    with fresh_database("sqlite", postgres_templates, directory) as db:
        with IdentityServer(pki, directory, db.url.render_as_string(False),
                            clients=lambda s: [a.register(s) for a in apps]) as server:
            for app in apps:
                app.start(server)
            try:
                yield server
            finally:
                for app in apps:
                    app.stop()


@pytest.fixture
def page() -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required (scripts/dev.sh installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(locale="vi-VN")
        yield context.new_page()
        context.close()
        browser.close()


def wait_until(predicate: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_full_login_sso_and_logout_in_chromium(
        page: Page, idp: IdentityServer, apps: tuple[ProvincialApp, ProvincialApp]) -> None:
    hcm, hanoi = apps
    citizen = idp.citizen("079184000901", name="Võ Thị Hạnh", born=dt.date(1984, 8, 8),
                          sex=Sex.FEMALE)

    # 1. Password + TOTP (level 2) at the first system.
    page.goto(hcm.base + "/")
    page.click("#login-loa2")
    page.wait_for_selector("#identifier")
    assert page.locator("html").get_attribute("lang") == "vi"
    assert page.get_by_label("Số định danh cá nhân hoặc mã số thuế").is_visible()
    page.fill("#identifier", citizen.identifier)
    page.fill("#password", citizen.password)
    page.click("#login-submit")
    page.wait_for_selector("#otp")
    page.fill("#otp", citizen.otp())
    page.click("#otp-submit")
    page.wait_for_selector("#consent-allow")
    assert "Số định danh cá nhân" in page.content()
    page.click("#consent-allow")
    page.wait_for_selector("#status")
    assert "Đã đăng nhập (mức LoA2)" in page.inner_text("#status")
    assert page.inner_text("#claim-SoDinhDanh") == citizen.identifier

    # 2. The second system: the same provider session, only its own consent.
    page.goto(hanoi.base + "/login")
    page.wait_for_selector("#consent-allow")
    assert page.locator("#password").count() == 0
    page.click("#consent-allow")
    page.wait_for_selector("#status")
    assert "Đã đăng nhập" in page.inner_text("#status")
    sid = next(iter(hcm.state.sessions.values()))[0].id_claims["sid"]
    assert next(iter(hanoi.state.sessions.values()))[0].id_claims["sid"] == sid

    # 3. Logout at the first ends both, the second through back-channel logout.
    page.goto(hcm.base + "/")
    page.click("#logout")
    page.wait_for_selector("#status")
    assert "Đã đăng xuất" in page.inner_text("#status")
    wait_until(lambda: not hanoi.state.sessions and sid in hanoi.state.logouts)
    page.goto(hanoi.base + "/")
    assert "Chưa đăng nhập" in page.inner_text("#status")

    # 4. QR login at the second system, approved in the citizen app.
    phone = CitizenApp(idp.issuer)
    with httpx.Client() as http:
        phone.enrol(http, idp.provider.devices.create_enrolment(citizen.account_id,
                                                                dt.datetime.now(dt.UTC)))
        page.click("#login-loa2")
        page.wait_for_selector(".qr-image svg")
        png = page.locator(".qr-image").screenshot()
        (decoded,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
        assert decoded.text.startswith("vnid://approve?")
        approval_id = dict(parse_qsl(urlsplit(decoded.text).query))["id"]
        number = page.inner_text("#qr-number")  # what the person reads off the screen
        answer = phone.approve(http, approval_id, code=number, uv=("face",))
        assert answer.json() == {"status": "approved"}
    # The page notices on its own (it polls) and continues; the consent was given before.
    page.wait_for_url(hanoi.base + "/", timeout=15000)
    assert "Đã đăng nhập (mức LoA2)" in page.inner_text("#status")
    tokens = next(iter(hanoi.state.sessions.values()))[0]
    assert set(tokens.id_claims["amr"]) == {"swk", "face", "mfa"}

    # 5. The first system joins the QR session; logout at the second ends both.
    page.goto(hcm.base + "/login")
    page.wait_for_url(hcm.base + "/")
    qr_sid = tokens.id_claims["sid"]
    assert next(iter(hcm.state.sessions.values()))[0].id_claims["sid"] == qr_sid
    page.goto(hanoi.base + "/")
    page.click("#logout")
    page.wait_for_selector("#status")
    wait_until(lambda: not hcm.state.sessions and qr_sid in hcm.state.logouts)
    page.goto(hcm.base + "/")
    assert "Chưa đăng nhập" in page.inner_text("#status")
