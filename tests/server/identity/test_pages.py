"""The pages people use, as HTML: Vietnamese first (English on request), accessible (language set,
skip link, every input labelled, errors announced and tied to their input, the QR status in a live
region), and served with the security headers that keep them out of frames and caches."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest

from tests.server.identity.harness import Browser, Citizen, IdentityServer
from tests.server.identity.raw import RawClient


class Page(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def all(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in
                                                           attrs.items())]

    def one(self, tag: str, **attrs: str) -> dict[str, str]:
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, found)
        return found[0]


def accessible(html: str, lang: str = "vi") -> Page:
    page = Page(html)
    assert page.one("html")["lang"] == lang
    skip = page.all("a")[0]  # the first link skips to the content
    assert skip["href"] == "#main" and page.one("main")["id"] == "main"
    labels = {a["for"] for a in page.all("label")}
    for field in page.all("input"):
        if field.get("type") != "hidden":
            assert field.get("id") in labels, field  # every visible input has its label
    assert not [a for a in page.all("script") if not a.get("src")]  # no inline script (CSP)
    return page


def secure_headers(r: httpx.Response) -> None:
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.fixture
def hcm(idp: IdentityServer) -> Iterator[RawClient]:
    client = RawClient(idp, "dvc-hcm")
    yield client
    client.close()


def start(hcm: RawClient, browser: Browser, **params: str) -> httpx.Response:
    r = hcm.par(**params)
    assert r.status_code == 201, r.text
    return browser.go(hcm.authorize_url(r.json()["request_uri"]))


def test_login_page_in_vietnamese_and_accessible(hcm: RawClient, browser: Browser) -> None:
    r = start(hcm, browser)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    secure_headers(r)
    page = accessible(browser.page)
    assert "Đăng nhập" in browser.page and "Số định danh cá nhân" in browser.page
    assert page.one("input", id="identifier")["aria-describedby"] == "identifier-help"
    status = page.one("p", id="qr-status")
    assert status["role"] == "status" and status["aria-live"] == "polite"
    qr = page.one("div", **{"class": "qr-image"})
    assert qr["role"] == "img" and qr["aria-label"]


def test_wrong_password_is_announced_and_tied_to_the_field(hcm: RawClient, browser: Browser,
                                                           citizen: Citizen) -> None:
    start(hcm, browser)
    browser.post("/login", {"identifier": citizen.identifier, "password": "sai-mat-khau-1"})
    page = accessible(browser.page)
    assert page.one("div", id="message")["role"] == "alert"
    assert "Số định danh hoặc mật khẩu không đúng." in browser.page
    field = page.one("input", id="identifier")
    assert field["aria-invalid"] == "true" and "message" in field["aria-describedby"].split()


def test_second_factor_error_is_tied_to_the_code_field(hcm: RawClient, browser: Browser,
                                                       citizen: Citizen) -> None:
    start(hcm, browser, acr_values="LoA2")
    browser.post("/login", {"identifier": citizen.identifier, "password": citizen.password})
    assert 'name="otp"' in browser.page
    accessible(browser.page)
    browser.post("/login/otp", {"otp": "000000"})
    page = accessible(browser.page)
    assert page.one("div", id="message")["role"] == "alert"
    field = page.one("input", id="otp")
    assert field["aria-invalid"] == "true" and field["aria-describedby"] == "message"
    assert field["autocomplete"] == "one-time-code"


def test_english_on_request(idp: IdentityServer, hcm: RawClient, browser: Browser) -> None:
    start(hcm, browser)
    assert re.search(r"<h1>Đăng nhập</h1>", browser.page)
    english = browser.go(idp.issuer + "/login?lang=en")
    assert english.status_code == 200
    accessible(browser.page, lang="en")
    assert re.search(r"<h1>Log in</h1>", browser.page) and "Đăng nhập" not in browser.page
    start(hcm, browser, ui_locales="en")
    accessible(browser.page, lang="en")
    assert re.search(r"<h1>Log in</h1>", browser.page)


def test_consent_page_lists_what_is_released(hcm: RawClient, idp: IdentityServer) -> None:
    citizen = idp.citizen("079084000951", totp=False, level2=False)
    browser = Browser(idp.issuer)
    try:
        start(hcm, browser)
        browser.post("/login", {"identifier": citizen.identifier, "password": citizen.password})
        accessible(browser.page)
        assert 'id="consent-allow"' in browser.page and 'id="consent-deny"' in browser.page
        assert "Số định danh cá nhân" in browser.page
    finally:
        browser.close()


def test_error_page_is_announced(idp: IdentityServer) -> None:
    with httpx.Client() as http:
        r = http.get(idp.issuer + "/authorize", params={"client_id": "nobody"})
    assert r.status_code == 400
    secure_headers(r)
    page = accessible(r.text)
    assert page.one("p", role="alert") is not None and "invalid_request" in r.text
