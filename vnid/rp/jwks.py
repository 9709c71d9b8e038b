"""The provider's signing keys, fetched from its ``jwks_uri`` and cached.

Keys are looked up by ``kid``. An unknown ``kid`` triggers a refresh (the provider publishes a new
key ahead of using it, so this is how rotation reaches the relying party), at most once per
``min_refresh`` so a stream of forged tokens with random ``kid`` values cannot make the relying party
hammer the provider. The cache is otherwise refreshed after ``ttl``.
"""

from __future__ import annotations

import datetime as dt
import threading

from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

from vnid.rp.errors import ProviderError, TokenInvalid
from vnid.rp.transport import HttpTransport

__all__ = ["JwksCache"]


class JwksCache:
    """The provider's signing keys, fetched and cached, refreshed when an unknown key id appears (at most
    every ``min_refresh``)."""
    def __init__(self, transport: HttpTransport, jwks_uri: str, *,
                 ttl: dt.timedelta = dt.timedelta(minutes=10),
                 min_refresh: dt.timedelta = dt.timedelta(seconds=30)) -> None:
        self._transport = transport
        self._uri = jwks_uri
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: dt.datetime | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def refresh(self, now: dt.datetime) -> None:
        response = self._transport.request("GET", self._uri, headers={"accept": "application/json"})
        if response.status != 200:
            raise ProviderError("jwks_unavailable", status=response.status)
        try:
            keyset = PyJWKSet.from_dict(response.json())
        except (PyJWKSetError, PyJWKError, ValueError) as exc:
            raise ProviderError("jwks_invalid", str(exc)) from None
        self._keys = {k.key_id: k for k in keyset.keys if k.key_id and
                      k.public_key_use in (None, "sig")}
        self._fetched_at = now
        self.fetches += 1

    def key(self, kid: str, now: dt.datetime) -> PyJWK:
        key = self._keys.get(kid)
        stale = self._fetched_at is None or now - self._fetched_at > self._ttl
        if key is not None and not stale:
            return key
        with self._lock:
            may_refresh = self._fetched_at is None or stale or \
                now - self._fetched_at >= self._min_refresh
            if may_refresh:
                self.refresh(now)
        key = self._keys.get(kid)
        if key is None:
            raise TokenInvalid("unknown kid")
        return key
