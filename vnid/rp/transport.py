"""The HTTP port of the relying-party library. The library never opens sockets itself: a provincial
system passes an implementation (the reference server ships one on httpx,
:class:`server.identity.rp_transport.HttpxTransport`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["HttpResponse", "HttpTransport"]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An HTTP response as the relying party needs it."""
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


class HttpTransport(Protocol):
    """How the relying-party library sends HTTP requests (bring your own client)."""
    def request(self, method: str, url: str, *, headers: Mapping[str, str],
                form: Mapping[str, str] | None = None) -> HttpResponse:
        """Send one request (``form`` as application/x-www-form-urlencoded); never follow
        redirects."""
        ...
