"""HTTP adapter of :class:`signing.sign.timestamps.TimeStampTransport` (RFC 3161 §3.4)."""

from __future__ import annotations

import httpx

__all__ = ["HttpTimeStampTransport"]


class HttpTimeStampTransport:
    """Posts ``application/timestamp-query`` to a TSA URL; answers must be
    ``application/timestamp-reply`` with status 200."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout)

    def exchange(self, request: bytes) -> bytes:
        try:
            response = self._client.post(
                self.url, content=request,
                headers={"Content-Type": "application/timestamp-query"})
        except httpx.HTTPError as exc:
            raise OSError(f"time-stamping authority unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise OSError(f"time-stamping authority answered HTTP {response.status_code}")
        return response.content

    def close(self) -> None:
        self._client.close()
