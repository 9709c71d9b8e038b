"""The transport-neutral request and response the endpoints work on.

The server turns an HTTP request into a :class:`Request` (lower-case header names, the parameters of
the query or the form body) and a :class:`Response` back into HTTP. Parameters must not repeat
(RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from vnid.oauth2.errors import InvalidRequest, OAuthError

__all__ = ["Request", "Response", "add_query", "parse_params"]

_MAX_PARAM = 8192


def parse_params(data: bytes | str) -> dict[str, str]:
    """Parse ``application/x-www-form-urlencoded`` data; a repeated or oversized parameter is an
    ``invalid_request``."""
    text = data.decode("utf-8", errors="strict") if isinstance(data, bytes) else data
    out: dict[str, str] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                          max_num_fields=100)
    except ValueError:
        raise InvalidRequest("too many parameters") from None
    for key, value in pairs:
        if key in out:
            raise InvalidRequest(f"parameter {key} is repeated")
        if len(value) > _MAX_PARAM:
            raise InvalidRequest(f"parameter {key} is too long")
        out[key] = value
    return out


def add_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` appended to its query (the redirect URI keeps its own query)."""
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(dict(params))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str  # the endpoint's public URL (no query): what a DPoP proof's ``htu`` must name
    headers: Mapping[str, str]  # lower-case names
    params: Mapping[str, str]
    remote: str = ""  # the client's address, for throttling

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass(slots=True)
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, data: Mapping[str, Any] | Sequence[Any], status: int = 200,
             headers: Sequence[tuple[str, str]] = (), *, cache: bool = False) -> Response:
        hdrs = [("content-type", "application/json")]
        if not cache:
            hdrs.append(("cache-control", "no-store"))
        hdrs.extend(headers)
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(status, hdrs, body)

    @classmethod
    def jwt(cls, token: str, headers: Sequence[tuple[str, str]] = ()) -> Response:
        return cls(200, [("content-type", "application/jwt"), ("cache-control", "no-store"),
                         *headers], token.encode())

    @classmethod
    def redirect(cls, location: str, headers: Sequence[tuple[str, str]] = ()) -> Response:
        return cls(303, [("location", location), ("cache-control", "no-store"), *headers])

    @classmethod
    def error(cls, exc: OAuthError, *, www_authenticate: str | None = None) -> Response:
        headers = list(exc.headers)
        if www_authenticate is not None:
            params = f'error="{exc.error}"'
            if exc.description:
                safe = exc.description.replace("\\", "").replace('"', "'")
                params += f', error_description="{safe}"'
            headers.append(("www-authenticate", f"{www_authenticate} {params}"))
        return cls.json(exc.body(), exc.status, headers)
