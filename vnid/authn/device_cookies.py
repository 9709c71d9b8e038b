"""Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies").

After a successful login the browser receives a device cookie: for each account that logged in
from it, a random nonce, an expiry and an HMAC binding them to the account. A later login attempt
that presents a valid entry for the account it names comes from a *known device*: limits meant
for guessing from unknown places (per source address) do not apply to it, so citizens behind one
shared address (a commune kiosk, a carrier's CGNAT address) are not held back by strangers'
mistakes. The cookie names no account (an entry is only checked against the account being tried),
and an attacker cannot make one for an account without logging into it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets

__all__ = ["DeviceCookies"]

_VERSION = "d1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class DeviceCookies:
    """Issues and checks device cookie values (``max_entries`` accounts per browser)."""

    def __init__(self, key: bytes, *, lifetime: dt.timedelta = dt.timedelta(days=180),
                 max_entries: int = 8) -> None:
        self._key = hmac.new(key, b"vnid device cookie", hashlib.sha256).digest()
        self.lifetime = lifetime
        self.max_entries = max_entries

    def _mac(self, account_id: str, expires: int, nonce: str) -> str:
        message = f"{_VERSION}|{account_id}|{expires}|{nonce}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest()[:16])

    @staticmethod
    def _entries(cookie: str) -> list[tuple[str, int, str, str]]:
        found = []
        for raw in cookie.split("~")[:32] if cookie else []:
            parts = raw.split(".")
            if len(parts) == 4 and parts[0] == _VERSION and parts[1].isdigit():
                found.append((parts[0], int(parts[1]), parts[2], parts[3]))
        return found

    def recognises(self, cookie: str, account_id: str, now: dt.datetime) -> bool:
        """Whether ``cookie`` holds a valid, unexpired entry for ``account_id``."""
        if not account_id:
            return False
        stamp = int(now.timestamp())
        return any(expires > stamp and hmac.compare_digest(mac, self._mac(account_id, expires,
                                                                           nonce))
                   for _, expires, nonce, mac in self._entries(cookie))

    def add(self, cookie: str, account_id: str, now: dt.datetime) -> str:
        """The cookie value after ``account_id`` logged in: a fresh entry for it, the other
        accounts' unexpired entries kept (the newest ``max_entries``)."""
        stamp = int(now.timestamp())
        kept = [e for e in self._entries(cookie) if e[1] > stamp
                and not hmac.compare_digest(e[3], self._mac(account_id, e[1], e[2]))]
        expires = stamp + int(self.lifetime.total_seconds())
        nonce = _b64(secrets.token_bytes(12))
        entry = (_VERSION, expires, nonce, self._mac(account_id, expires, nonce))
        entries = [*kept[-(self.max_entries - 1):], entry] if self.max_entries > 1 else [entry]
        return "~".join(".".join(str(p) for p in e) for e in entries)
