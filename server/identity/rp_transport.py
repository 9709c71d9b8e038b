"""The relying-party library's HTTP port on httpx (for provincial systems built on this server,
the example app and the tests)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from vnid.rp.transport import HttpResponse

__all__ = ["HttpxTransport"]


class HttpxTransport:
    """Implements :class:`vnid.rp.transport.HttpTransport`."""

    def __init__(self, client: httpx.Client | None = None, *, timeout: float = 10.0) -> None:
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def request(self, method: str, url: str, *, headers: Mapping[str, str],
                form: Mapping[str, str] | None = None) -> HttpResponse:
        response = self._client.request(method, url, headers=dict(headers),
                                        data=dict(form) if form is not None else None)
        return HttpResponse(response.status_code,
                            {k.lower(): v for k, v in response.headers.items()},
                            response.content)

    def close(self) -> None:
        self._client.close()
