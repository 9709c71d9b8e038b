"""The one table that turns exceptions into gRPC status codes (AIP-193).

Library code raises its package's exceptions (``VnidError``, ``SigningError``, ``PaymentsError`` and
their category subclasses); server code raises the :class:`ServerError` subclasses below. Nothing
else in the server sets a status code: the error interceptor looks the exception's class up here (the
most specific class in its MRO wins) and answers with a ``google.rpc.Status`` holding an
``ErrorInfo(reason, domain, metadata)``. Anything not in the table is a bug: INTERNAL, with the
request id and no details.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from sqlalchemy import exc as sa_exc

import payments.errors as pe
import signing.errors as se
import vnid.errors as ve
from signing.budget import WorkStopped
from signing.pkcs11 import TokenError
from signing.sign.errors import RevocationUnavailable, TimestampUnavailable

__all__ = [
    "ERROR_DOMAIN",
    "Aborted",
    "DATABASE_FAULTS",
    "DEPENDENCY_FAULTS",
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
                 metadata: Mapping[str, str] | None = None,
                 details: Sequence[Message] = ()) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = dict(metadata or {})
        # google.rpc detail messages sent beside the ErrorInfo (e.g. a BadRequest).
        self.details = tuple(details)


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


class Aborted(ServerError):
    """The transaction lost a race with another one (serialization failure, deadlock, lock
    timeout): retrying the whole call is safe and usually succeeds."""

    reason = "ABORTED"


class Unimplemented(ServerError):
    """The method does not exist on this server."""

    reason = "UNIMPLEMENTED"


# Exception class -> status code. Order does not matter: lookup walks the exception's MRO.
STATUS_TABLE: Mapping[type[BaseException], grpc.StatusCode] = {
    NotAuthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    Aborted: grpc.StatusCode.ABORTED,
    Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
    ve.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    ve.NotFound: grpc.StatusCode.NOT_FOUND,
    ve.Conflict: grpc.StatusCode.ALREADY_EXISTS,
    ve.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ve.AuthenticationFailed: grpc.StatusCode.UNAUTHENTICATED,
    ve.NotPermitted: grpc.StatusCode.PERMISSION_DENIED,
    ve.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    se.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    # Dependencies of signing that are down (see DEPENDENCY_FAULTS): retry later.
    TimestampUnavailable: grpc.StatusCode.UNAVAILABLE,
    RevocationUnavailable: grpc.StatusCode.UNAVAILABLE,
    TokenError: grpc.StatusCode.UNAVAILABLE,
    # Work stopped because the caller's deadline passed or it went away (nobody hears the answer,
    # but the audit log records why the call ended).
    WorkStopped: grpc.StatusCode.DEADLINE_EXCEEDED,
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
    # google.rpc detail messages beside the ErrorInfo (BadRequest, RetryInfo).
    details: tuple[Message, ...] = field(default=())


# Database faults that are not bugs: SQLSTATE (PostgreSQL) or SQLite message -> the exception
# to answer with and how long a client should wait before retrying. Anything else the database
# raises stays INTERNAL (a bug: a constraint the code should have checked, a bad query).
DATABASE_FAULTS: Mapping[str, tuple[type[ServerError], str, float]] = {
    # The transaction lost a race: retry the call.
    "40001": (Aborted, "SERIALIZATION_FAILURE", 0.1),
    "40P01": (Aborted, "DEADLOCK", 0.1),
    "55P03": (Aborted, "LOCK_TIMEOUT", 1.0),
    "57014": (Aborted, "STATEMENT_TIMEOUT", 1.0),
    # The database went away (terminated connection, restart, failover): retry the call.
    "57P01": (Unavailable, "DATABASE_UNAVAILABLE", 1.0),
    "57P02": (Unavailable, "DATABASE_UNAVAILABLE", 1.0),
    "57P03": (Unavailable, "DATABASE_UNAVAILABLE", 1.0),
    "25006": (Unavailable, "DATABASE_READ_ONLY", 1.0),  # a standby after failover
    "53300": (Unavailable, "DATABASE_BUSY", 1.0),
    "53100": (Unavailable, "STORAGE_FULL", 30.0),
    "sqlite:database is locked": (Aborted, "LOCK_TIMEOUT", 1.0),
    "sqlite:database or disk is full": (Unavailable, "STORAGE_FULL", 30.0),
    "sqlite:disk I/O error": (Unavailable, "STORAGE_FULL", 30.0),
    "os:28": (Unavailable, "STORAGE_FULL", 30.0),  # ENOSPC (temporary files, spools)
    "os:27": (Unavailable, "STORAGE_FULL", 30.0),  # EFBIG (file size limit)
    "connection": (Unavailable, "DATABASE_UNAVAILABLE", 1.0),
}


# Library errors that say a dependency is down (the TSA, the OCSP responders and CRL
# repositories, the PKCS#11 token): UNAVAILABLE in the table above, sent with a RetryInfo
# saying when to try again (seconds).
DEPENDENCY_FAULTS: Mapping[type[BaseException], float] = {
    TimestampUnavailable: 5.0,
    RevocationUnavailable: 5.0,
    TokenError: 30.0,
}


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions behind it (``__cause__``, ``__context__``), nearest first."""
    seen: set[int] = set()
    out: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(out) < 16:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        out.append(current)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return out


def _fault_key(exc: BaseException) -> str | None:
    """The fault behind ``exc`` or any exception in its chain: a fault often surfaces as a later
    error raised while handling it, e.g. a ``PendingRollbackError`` from a session used again
    after its connection was terminated."""
    for current in _chain(exc):
        key = _own_fault_key(current)
        if key is not None:
            return key
    return None


def _own_fault_key(exc: BaseException) -> str | None:
    if isinstance(exc, sa_exc.PendingRollbackError) and exc.code == "8s2b":
        # SQLAlchemy raises this (code 8s2b) only for a connection invalidated by a disconnect
        # whose transaction was not rolled back yet: the connection is gone, not a bug.
        return "connection"
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError) and exc.errno in (27, 28):
        return f"os:{exc.errno}"
    if not isinstance(exc, sa_exc.DBAPIError | sa_exc.DisconnectionError):
        return None
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in DATABASE_FAULTS:
        return str(sqlstate)
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig)
        for key in DATABASE_FAULTS:
            if key.startswith("sqlite:") and text.startswith(key[len("sqlite:"):]):
                return key
    if isinstance(exc, sa_exc.DisconnectionError) or getattr(exc, "connection_invalidated", False):
        return "connection"
    if isinstance(exc, sa_exc.OperationalError) and (sqlstate is None or sqlstate.startswith("08")):
        return "connection"  # psycopg: the server closed the connection, cannot connect
    return None


def _retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(int(seconds * 1000))
    return error_details_pb2.RetryInfo(retry_delay=delay)


def map_exception(exc: BaseException, request_id: str) -> MappedError:
    """The status, reason, caller-safe message and metadata for ``exc``."""
    fault = _fault_key(exc)
    if fault is not None:
        cls, reason, wait = DATABASE_FAULTS[fault]
        message = ("the storage is full: try again later" if reason == "STORAGE_FULL" else
                   "the transaction conflicted with another one: retry the call"
                   if cls is Aborted else "the database is unavailable: retry the call")
        return MappedError(code=STATUS_TABLE[cls], reason=reason, message=message,
                           metadata={"request_id": request_id},
                           audit_detail=f"{type(exc).__name__}:{fault}",
                           details=(_retry_info(wait),))
    # A dependency that is down, even when a library reported it as another error of its own
    # (a token failure becomes the signer's SigningRefused): the dependency's error is the answer.
    exc = next((e for e in _chain(exc) if isinstance(e, tuple(DEPENDENCY_FAULTS))), exc)
    for cls in type(exc).__mro__:
        code = STATUS_TABLE.get(cls)
        if code is not None and isinstance(exc, _LIBRARY_BASES):
            metadata = {str(k): str(v) for k, v in getattr(exc, "metadata", {}).items()}
            metadata["request_id"] = request_id
            details = tuple(getattr(exc, "details", ()))
            delay = next((w for c, w in DEPENDENCY_FAULTS.items() if isinstance(exc, c)), None)
            if delay is not None:
                details += (_retry_info(delay),)
            return MappedError(
                code=code,
                reason=exc.reason,
                message=exc.message,
                metadata=metadata,
                audit_detail=getattr(exc, "detail", ""),
                details=details,
            )
    return MappedError(
        code=grpc.StatusCode.INTERNAL,
        reason="INTERNAL",
        message=f"internal error (request id {request_id})",
        metadata={"request_id": request_id},
        audit_detail=type(exc).__name__,
    )
