"""AIP-158 page sizes and opaque page tokens (``vnegov.common.v1.PageTokenContent``)."""

from __future__ import annotations

import base64
import binascii
import hashlib

from google.protobuf.message import DecodeError

from server.errors import InvalidArgument
from vnegov.common.v1 import pagination_pb2

__all__ = ["decode_page_token", "encode_page_token", "page_size", "query_digest"]


def page_size(requested: int, *, default: int = 50, maximum: int = 1000) -> int:
    if requested < 0:
        raise InvalidArgument("page_size must not be negative", metadata={"field": "page_size"})
    if requested == 0:
        return default
    return min(requested, maximum)


def query_digest(method: str, *parts: str) -> bytes:
    h = hashlib.sha256(method.encode())
    for part in parts:
        h.update(b"\x00" + part.encode())
    return h.digest()


def encode_page_token(cursor: bytes, digest: bytes) -> str:
    content = pagination_pb2.PageTokenContent(cursor=cursor, query_digest=digest)
    return base64.urlsafe_b64encode(content.SerializeToString()).rstrip(b"=").decode()


def decode_page_token(token: str, digest: bytes) -> bytes | None:
    """The cursor in ``token`` (None for an empty token); raises for a token of another query."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        content = pagination_pb2.PageTokenContent.FromString(raw)
    except (binascii.Error, ValueError, DecodeError):
        raise InvalidArgument("page_token is not valid", reason="INVALID_PAGE_TOKEN",
                              metadata={"field": "page_token"}) from None
    if content.query_digest != digest:
        raise InvalidArgument("page_token was issued for a different query",
                              reason="INVALID_PAGE_TOKEN", metadata={"field": "page_token"})
    return bytes(content.cursor)
