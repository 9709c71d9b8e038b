"""Device cookies: only a login makes one, for its own account, until it expires."""

from __future__ import annotations

import datetime as dt

from vnid.authn.device_cookies import DeviceCookies

NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


def test_a_cookie_marks_a_known_device_for_its_accounts_only() -> None:
    cookies = DeviceCookies(b"k" * 32)
    value = cookies.add("", "acc-an", NOW)
    assert cookies.recognises(value, "acc-an", NOW)
    assert not cookies.recognises(value, "acc-binh", NOW)  # another account: unknown device
    both = cookies.add(value, "acc-binh", NOW)
    assert cookies.recognises(both, "acc-an", NOW) and cookies.recognises(both, "acc-binh", NOW)
    assert "acc-an" not in both  # names no account


def test_forged_tampered_expired_or_foreign_cookies_are_not_recognised() -> None:
    cookies = DeviceCookies(b"k" * 32, lifetime=dt.timedelta(days=1))
    value = cookies.add("", "acc-an", NOW)
    version, expires, nonce, mac = value.split(".")
    later_expiry = f"{version}.{int(expires) + 86400 * 365}.{nonce}.{mac}"
    assert not cookies.recognises(later_expiry, "acc-an", NOW)  # expiry extended by hand
    assert not cookies.recognises(f"{version}.{expires}.{nonce}.{'A' * len(mac)}", "acc-an", NOW)
    assert not cookies.recognises(value, "acc-an", NOW + dt.timedelta(days=2))  # expired
    other_server = DeviceCookies(b"x" * 32)  # another deployment's key
    assert not cookies.recognises(other_server.add("", "acc-an", NOW), "acc-an", NOW)
    for junk in ("", "~", "d1.x.y.z", "d2.1.a.b", "." * 10, "d1.99999999999.a.b~" * 40):
        assert not cookies.recognises(junk, "acc-an", NOW)
        cookies.add(junk, "acc-an", NOW)  # a new login replaces junk without failing


def test_a_browser_keeps_the_newest_entries() -> None:
    cookies = DeviceCookies(b"k" * 32, max_entries=3)
    value = ""
    for i in range(5):
        value = cookies.add(value, f"acc-{i}", NOW)
    assert [cookies.recognises(value, f"acc-{i}", NOW) for i in range(5)] == [
        False, False, True, True, True]
    again = cookies.add(value, "acc-4", NOW)  # logging in again refreshes, never duplicates
    assert len(again.split("~")) == 3 and cookies.recognises(again, "acc-2", NOW)
