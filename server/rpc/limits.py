"""Limits of the gRPC server: message sizes per method class, streams per connection, keepalive.

grpcio enforces one receive limit for the whole server (the largest class's, so nothing larger is
ever buffered) and answers a message above it RESOURCE_EXHAUSTED itself. Each method's own limit is
checked by :class:`GuardedDeserializer` before the message is parsed: a larger message, or bytes
that do not parse, reach the servicer as a :class:`Rejected` marker, which the call interceptor
answers INVALID_ARGUMENT (``MESSAGE_TOO_LARGE`` / ``MALFORMED_MESSAGE``) and audits like any other
failure, instead of grpcio's UNKNOWN that named the Python exception and was never audited.

Method classes: ``document`` (the signing streams: a 4 MiB chunk and its header per message),
``bulk`` (statement imports and channel lists, which arrive whole) and ``default`` (everything
else, including any method added later).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.config import GrpcLimits

__all__ = ["METHOD_CLASSES", "GuardedDeserializer", "Rejected", "grpc_server_options",
           "message_limit", "method_class"]

METHOD_CLASSES: dict[str, str] = {
    "/vnegov.signing.v1.SigningService/SignDocument": "document",
    "/vnegov.signing.v1.SigningService/VerifyDocument": "document",
    "/vnegov.signing.v1.SigningService/ExtendDocument": "document",
    "/vnegov.payments.v1.PaymentsService/ImportStatement": "bulk",
    "/vnegov.payments.v1.PaymentsService/CompareChannelList": "bulk",
}


def method_class(method: str) -> str:
    return METHOD_CLASSES.get(method, "default")


def message_limit(limits: GrpcLimits, method: str) -> int:
    return {"document": limits.max_document_message_bytes,
            "bulk": limits.max_bulk_message_bytes}.get(method_class(method),
                                                       limits.max_message_bytes)


def grpc_server_options(limits: GrpcLimits) -> list[tuple[str, Any]]:
    """Channel arguments of the gRPC server (grpc core's names)."""
    largest = max(limits.max_message_bytes, limits.max_document_message_bytes,
                  limits.max_bulk_message_bytes)
    return [
        ("grpc.max_receive_message_length", largest),
        ("grpc.max_send_message_length", max(largest, 16 << 20)),
        ("grpc.max_concurrent_streams", limits.max_concurrent_streams),
        ("grpc.max_metadata_size", limits.max_metadata_bytes),
        ("grpc.keepalive_time_ms", int(limits.keepalive_time_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", int(limits.keepalive_timeout_seconds * 1000)),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.min_ping_interval_without_data_ms",
         int(limits.min_ping_interval_seconds * 1000)),
        ("grpc.http2.max_ping_strikes", limits.max_ping_strikes),
    ]


class Rejected:
    """What a request message that could not be accepted deserialises to."""

    __slots__ = ("reason", "message", "size")

    def __init__(self, reason: str, message: str, size: int) -> None:
        self.reason, self.message, self.size = reason, message, size


class GuardedDeserializer:
    """A method's request deserialiser that never raises: over the size limit or unparsable
    bytes give a :class:`Rejected`."""

    __slots__ = ("parse", "limit")

    def __init__(self, parse: Callable[[bytes], Any], limit: int) -> None:
        self.parse, self.limit = parse, limit

    def __call__(self, data: bytes) -> Any:
        if len(data) > self.limit:
            return Rejected("MESSAGE_TOO_LARGE",
                            f"the request message is larger than this method accepts "
                            f"({self.limit} bytes)", len(data))
        try:
            return self.parse(data)
        except Exception:
            return Rejected("MALFORMED_MESSAGE", "the request message cannot be parsed",
                            len(data))
