"""Login limits fair to shared addresses, over HTTP behind a trusted proxy.

A commune kiosk and a mobile carrier's CGNAT address put many citizens behind one address: their
typos must not lock out the next citizen who types the right password. A password spray across
many accounts from one address must still be slowed and audited, and a citizen whose browser is a
known device (device cookie) is spared even then.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from server.storage.audit import AuditEventRow
from tests.server.identity.harness import Browser, Citizen, IdentityServer
from tests.server.identity.raw import RawClient
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki

KIOSK = "198.51.100.20"  # a commune's one public address
CARRIER = "203.0.113.77"  # a mobile carrier's CGNAT address
SPRAYER = "192.0.2.66"
BLOCKED = re.compile(r"thử lại sau \d+ giây")
WRONG = "không đúng"
CONSENT = 'id="consent-allow"'


class Clock:
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
    directory = tmp_path_factory.mktemp("idp-fair")
    with fresh_database("sqlite", postgres_templates, directory) as db:
        # The balancer in front is 127.0.0.1: it reports the citizen's address in X-Forwarded-For.
        # The HTTP front's own rate limit per address (20 login posts a second) is lifted, so
        # what is measured is the login limits alone.
        with IdentityServer(pki, directory, db.url.render_as_string(False), clock=clock,
                            extra_server={"trusted_proxies": ["127.0.0.1"]},
                            extra_config={"limits": {"http": {"login": {
                                "rate_per_second": 0, "burst": 0}}}}) as server:
            server.db = db  # type: ignore[attr-defined]
            yield server


@pytest.fixture
def hcm(idp: IdentityServer) -> Iterator[RawClient]:
    client = RawClient(idp, "dvc-hcm")
    yield client
    client.close()


def later(clock: Clock, client: RawClient, seconds: float) -> None:
    clock.offset += dt.timedelta(seconds=seconds)
    client.offset = clock.offset


def browser_at(idp: IdentityServer, hcm: RawClient, address: str,
               browser: Browser | None = None) -> Browser:
    """A browser (a new one: an unknown device) behind ``address``, on the login page."""
    browser = browser or Browser(idp.issuer)
    browser.http.headers["x-forwarded-for"] = address
    browser.go(hcm.authorize_url(hcm.par().json()["request_uri"]))
    assert 'name="password"' in browser.page, browser.page[:300]
    return browser


def password(browser: Browser, citizen: Citizen, secret: str) -> str:
    browser.post("/login", {"identifier": citizen.identifier, "password": secret})
    return browser.page


def events(idp: IdentityServer, remote: str) -> list[tuple[str, str, dict[str, object]]]:
    with idp.db.read() as s:  # type: ignore[attr-defined]
        rows = s.execute(select(AuditEventRow.action, AuditEventRow.reason,
                                AuditEventRow.details)).all()
    return [(a, r, json.loads(d)) for a, r, d in rows if json.loads(d).get("remote") == remote]


def test_commune_kiosk_typos_do_not_lock_out_the_next_citizen(
        idp: IdentityServer, hcm: RawClient) -> None:
    """25 typos by 10 citizens at one kiosk, more than the address's 20 free failures: the next
    citizen, and a citizen who made 3 typos, log in at once with the right password."""
    citizens = [idp.citizen(f"079084{510000 + i}", totp=False, level2=False) for i in range(11)]
    typos = 0
    for i, citizen in enumerate(citizens[:10]):
        browser = browser_at(idp, hcm, KIOSK)
        try:
            for t in range(3 if i < 5 else 2):
                assert WRONG in password(browser, citizen, f"{citizen.password}-typo{t}")
                typos += 1
        finally:
            browser.close()
    assert typos == 25 > idp.provider.settings.throttle_address.free_attempts
    for citizen in (citizens[10], citizens[0]):
        browser = browser_at(idp, hcm, KIOSK)
        try:
            assert CONSENT in password(browser, citizen, citizen.password)
        finally:
            browser.close()
    assert not [e for e in events(idp, KIOSK) if e[1] == "THROTTLED"]


def test_carrier_address_many_citizens_with_typos_the_next_logs_in_at_once(
        idp: IdentityServer, hcm: RawClient) -> None:
    """CGNAT: 40 citizens behind one carrier address each mistype twice, then log in. More
    distinct accounts failed than the address allows for free (20), but each success takes
    failures off the address: the next citizen logs in at once."""
    citizens = [idp.citizen(f"079084{520000 + i}", totp=False, level2=False) for i in range(41)]
    for citizen in citizens[:40]:
        browser = browser_at(idp, hcm, CARRIER)
        try:
            assert WRONG in password(browser, citizen, "wrong-1")
            assert WRONG in password(browser, citizen, "wrong-2")
            assert CONSENT in password(browser, citizen, citizen.password)
        finally:
            browser.close()
    browser = browser_at(idp, hcm, CARRIER)
    try:
        assert CONSENT in password(browser, citizens[40], citizens[40].password)
    finally:
        browser.close()
    assert not [e for e in events(idp, CARRIER) if e[1] == "THROTTLED"]


@pytest.mark.slow
def test_password_spray_over_1000_accounts_is_slowed_and_audited_known_devices_spared(
        idp: IdentityServer, hcm: RawClient, clock: Clock) -> None:
    """One address tries one password on 1,000 accounts, one attempt a second: after 20
    accounts the address backs off (doubling to 5 minutes), so only a few dozen attempts are
    ever checked; each refusal is audited. Meanwhile a citizen whose browser logged in from
    there before (a known device) logs in at once, and a new device there is held back."""
    regular = idp.citizen("079084530001", totp=False, level2=False)
    stranger = idp.citizen("079084530002", totp=False, level2=False)
    own = browser_at(idp, hcm, SPRAYER)  # the regular's own browser, behind the same address
    assert CONSENT in password(own, regular, regular.password)  # now a known device
    device = own.http.cookies.get("vnid_device")
    assert device
    own.http.cookies.clear()  # the session is over; the device cookie stays
    own.http.cookies.set("vnid_device", device)
    started = time.monotonic()
    accounts = [idp.citizen(f"079084{540000 + i}", totp=False, level2=False) for i in range(1000)]
    print(f"1000 accounts made in {time.monotonic() - started:.1f} s")
    attacker = Browser(idp.issuer)
    outcomes = {"wrong": 0, "blocked": 0}
    checked_others = False
    try:
        for n, victim in enumerate(accounts):
            if n % 100 == 0:  # a login page lasts 10 minutes: the attacker opens new ones
                browser_at(idp, hcm, SPRAYER, attacker)
            page = password(attacker, victim, "Matkhau@123")
            blocked = BLOCKED.search(page) is not None
            outcomes["blocked" if blocked else "wrong"] += 1
            assert WRONG in page or blocked, page[:300]
            if blocked and n >= 500 and not checked_others:
                # While the address is held back: a new device is held back too, even with the
                # right password; the regular's own browser (a known device) is not.
                new_device = browser_at(idp, hcm, SPRAYER)
                assert BLOCKED.search(password(new_device, stranger, stranger.password))
                new_device.close()
                assert CONSENT in password(browser_at(idp, hcm, SPRAYER, own), regular,
                                           regular.password)
                checked_others = True
            later(clock, hcm, 1)
        print(f"spray over {len(accounts)} accounts: {outcomes['wrong']} checked, "
              f"{outcomes['blocked']} refused")
        assert checked_others and outcomes["wrong"] < 40 and outcomes["blocked"] > 960
    finally:
        attacker.close()
        own.close()
        clock.offset = dt.timedelta(0)
        hcm.offset = dt.timedelta(0)
    audited = events(idp, SPRAYER)
    throttled = [d for a, r, d in audited if a == "login.password" and r == "THROTTLED"]
    failed = [d for a, r, d in audited if a == "login.password" and r == "INVALID_CREDENTIALS"]
    assert len(throttled) == outcomes["blocked"] + 1  # and the stranger's new device
    assert all(d["key"] == "address" for d in throttled)
    assert len(failed) == outcomes["wrong"]
