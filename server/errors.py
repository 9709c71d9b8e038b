"""The one table that turns exceptions into gRPC status codes (AIP-193).

Library code raises its package's exceptions (``VnidError``, ``SigningError``, ``PaymentsError`` and
their category subclasses); server code raises the :class:`ServerError` subclasses below. Nothing
else in the server sets a status code: the error interceptor looks the exception's class up here (the
most specific class in its MRO wins) and answers with a ``google.rpc.Status`` holding an
``ErrorInfo(reason, domain, metadata)``. Anything not in the table is a bug: INTERNAL, with the
request id and no details.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc

import payments.errors as pe
import signing.errors as se
import vnid.errors as ve

__all__ = [
    "ERROR_DOMAIN",
    "InvalidArgument",
    "MappedError",
    "NotAuthenticated",
    "PermissionDenied",
    "STATUS_TABLE",
    "ServerError",
    "Unavailable",
    "Unimplemented",
    "map_exception",
]

ERROR_DOMAIN = "vnegov"


class ServerError(Exception):
    """Errors raised by the server layer itself (authentication, request validation)."""

    reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None,
                 metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = dict(metadata or {})


class NotAuthenticated(ServerError):
    """No credentials, or credentials that did not verify. The public message is always the same;
    ``detail`` (a finer machine cause such as ``CERTIFICATE_EXPIRED``) goes to the audit log only."""

    reason = "UNAUTHENTICATED"

    def __init__(self, detail: str) -> None:
        super().__init__("the caller could not be authenticated")
        self.detail = detail


class PermissionDenied(ServerError):
    reason = "MISSING_SCOPE"


class InvalidArgument(ServerError):
    reason = "INVALID_ARGUMENT"


class Unavailable(ServerError):
    reason = "UNAVAILABLE"


class Unimplemented(ServerError):
    """The method does not exist on this server."""

    reason = "UNIMPLEMENTED"


# Exception class -> status code. Order does not matter: lookup walks the exception's MRO.
STATUS_TABLE: Mapping[type[BaseException], grpc.StatusCode] = {
    NotAuthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
    ve.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    ve.NotFound: grpc.StatusCode.NOT_FOUND,
    ve.Conflict: grpc.StatusCode.ALREADY_EXISTS,
    ve.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ve.AuthenticationFailed: grpc.StatusCode.UNAUTHENTICATED,
    ve.NotPermitted: grpc.StatusCode.PERMISSION_DENIED,
    ve.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    se.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    se.NotFound: grpc.StatusCode.NOT_FOUND,
    se.Conflict: grpc.StatusCode.ALREADY_EXISTS,
    se.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    se.AuthenticationFailed: grpc.StatusCode.UNAUTHENTICATED,
    se.NotPermitted: grpc.StatusCode.PERMISSION_DENIED,
    se.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    pe.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    pe.NotFound: grpc.StatusCode.NOT_FOUND,
    pe.Conflict: grpc.StatusCode.ALREADY_EXISTS,
    pe.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    pe.AuthenticationFailed: grpc.StatusCode.UNAUTHENTICATED,
    pe.NotPermitted: grpc.StatusCode.PERMISSION_DENIED,
    pe.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

_LIBRARY_BASES = (ve.VnidError, se.SigningError, pe.PaymentsError, ServerError)


@dataclass(frozen=True, slots=True)
class MappedError:
    code: grpc.StatusCode
    reason: str
    message: str
    metadata: dict[str, str]
    # A finer cause for the audit log that is deliberately not sent to the caller.
    audit_detail: str = ""


def map_exception(exc: BaseException, request_id: str) -> MappedError:
    """The status, reason, caller-safe message and metadata for ``exc``."""
    for cls in type(exc).__mro__:
        code = STATUS_TABLE.get(cls)
        if code is not None and isinstance(exc, _LIBRARY_BASES):
            metadata = {str(k): str(v) for k, v in getattr(exc, "metadata", {}).items()}
            metadata["request_id"] = request_id
            return MappedError(
                code=code,
                reason=exc.reason,
                message=exc.message,
                metadata=metadata,
                audit_detail=getattr(exc, "detail", ""),
            )
    return MappedError(
        code=grpc.StatusCode.INTERNAL,
        reason="INTERNAL",
        message=f"internal error (request id {request_id})",
        metadata={"request_id": request_id},
        audit_detail=type(exc).__name__,
    )
