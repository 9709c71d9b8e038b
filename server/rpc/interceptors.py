"""The three interceptors every gRPC call passes through, outermost first:

1. :class:`ObservabilityInterceptor` gives the call a request id, and when it ends records it:
   metrics, one JSON log line, and one audit event (awaited, so a call is answered only after its
   audit record is committed).
2. :class:`ErrorInterceptor` turns any exception into a ``google.rpc.Status`` through the one table
   in :mod:`server.errors`.
3. :class:`AuthInterceptor` authenticates the caller and checks the method's required scopes.

Calls to methods the server does not implement are authenticated and audited too, then answered
UNIMPLEMENTED.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.audit import AuditEvent, AuditWriter
from server.auth.authenticator import Authenticator
from server.auth.certificates import describe_certificate
from server.errors import (
    ERROR_DOMAIN,
    NotAuthenticated,
    PermissionDenied,
    Unimplemented,
    map_exception,
)
from server.metrics import Metrics
from server.rpc.rules import MethodRule
from server.rpc.state import CallState, current_call, reset_current, set_current

__all__ = ["AuthInterceptor", "ErrorInterceptor", "ObservabilityInterceptor"]

log = logging.getLogger("server.rpc")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")

Behavior = Callable[..., Any]
Around = Callable[[Behavior, bool], Behavior]


def _wrap(handler: grpc.RpcMethodHandler, around: Around) -> grpc.RpcMethodHandler:
    """A copy of ``handler`` whose behaviour is wrapped by ``around(behavior, streams_response)``."""
    if handler.unary_unary is not None:
        return handler._replace(unary_unary=around(handler.unary_unary, False))
    if handler.unary_stream is not None:
        return handler._replace(unary_stream=around(handler.unary_stream, True))
    if handler.stream_unary is not None:
        return handler._replace(stream_unary=around(handler.stream_unary, False))
    return handler._replace(stream_stream=around(handler.stream_stream, True))


def _metadata(details: grpc.HandlerCallDetails) -> dict[str, str]:
    return {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}


def _not_found_handler() -> grpc.RpcMethodHandler:
    async def unimplemented(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise Unimplemented("method not implemented")

    return grpc.unary_unary_rpc_method_handler(unimplemented)


def _as_async_iter(result: Any) -> AsyncIterator[Any]:
    if inspect.isasyncgen(result) or hasattr(result, "__aiter__"):
        return result  # type: ignore[no-any-return]

    async def from_sync() -> AsyncIterator[Any]:
        for item in result:
            yield item

    return from_sync()


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, metrics: Metrics, audit: AuditWriter) -> None:
        self._metrics = metrics
        self._audit = audit

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details) or _not_found_handler()
        method: str = details.method
        incoming = _metadata(details).get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex

        def around(behavior: Behavior, streams: bool) -> Behavior:
            if streams:
                async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                    state = CallState(request_id, method)
                    token = set_current(state)
                    await self._begin(state, context)
                    failed: BaseException | None = None
                    try:
                        async for item in _as_async_iter(behavior(request, context)):
                            yield item
                    except BaseException as exc:
                        failed = exc
                        raise
                    finally:
                        await self._end(state, context, failed)
                        reset_current(token)
                return stream

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                state = CallState(request_id, method)
                token = set_current(state)
                await self._begin(state, context)
                failed: BaseException | None = None
                try:
                    return await behavior(request, context)
                except BaseException as exc:
                    failed = exc
                    raise
                finally:
                    await self._end(state, context, failed)
                    reset_current(token)
            return unary

        return _wrap(handler, around)

    async def _begin(self, state: CallState, context: grpc.aio.ServicerContext) -> None:
        service, _, name = state.method.lstrip("/").rpartition("/")
        self._metrics.grpc_started.labels(service, name).inc()
        await context.send_initial_metadata((("x-request-id", state.request_id),))

    async def _end(self, state: CallState, context: grpc.aio.ServicerContext,
                   failed: BaseException | None) -> None:
        if failed is not None and state.code == grpc.StatusCode.OK:
            # Cancelled by the client, or aborted by code that bypassed the error interceptor.
            code = context.code() if hasattr(context, "code") else None
            state.code = code if isinstance(code, grpc.StatusCode) and \
                code != grpc.StatusCode.OK else grpc.StatusCode.CANCELLED
        elapsed = time.perf_counter() - state.started
        service, _, name = state.method.lstrip("/").rpartition("/")
        self._metrics.grpc_handled.labels(service, name, state.code.name).inc()
        self._metrics.grpc_latency.labels(service, name).observe(elapsed)
        caller = state.caller.audit_name if state.caller is not None else "anonymous"
        log.info("rpc", extra={
            "method": state.method, "code": state.code.name, "caller": caller,
            "reason": state.reason, "duration_ms": round(elapsed * 1000, 3),
        })
        details: dict[str, str | int | bool | None] = {"duration_ms": int(elapsed * 1000)}
        if state.audit_detail:
            details["cause"] = state.audit_detail
        details.update(state.audit_extra)
        if state.caller is not None and state.caller.certificate_sha256:
            details["certificate_sha256"] = state.caller.certificate_sha256
        event = AuditEvent(
            at=dt.datetime.now(dt.UTC), request_id=state.request_id, caller=caller, kind="rpc",
            action=state.method, outcome=state.code.name, reason=state.reason, details=details,
        )
        try:
            await self._audit.record(event)
        except Exception:
            self._metrics.audit_failures.inc()
            log.error("audit event could not be written", extra={"method": state.method})


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details) or _not_found_handler()

        def around(behavior: Behavior, streams: bool) -> Behavior:
            if streams:
                async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                    try:
                        async for item in _as_async_iter(behavior(request, context)):
                            yield item
                    except Exception as exc:
                        await _abort(exc, context)
                return stream

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    return await behavior(request, context)
                except Exception as exc:
                    await _abort(exc, context)
            return unary

        return _wrap(handler, around)


async def _abort(exc: Exception, context: grpc.aio.ServicerContext) -> None:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    state = current_call()
    mapped = map_exception(exc, state.request_id)
    state.code, state.reason, state.audit_detail = mapped.code, mapped.reason, mapped.audit_detail
    if mapped.code == grpc.StatusCode.INTERNAL:
        log.error("unhandled exception in %s", state.method, exc_info=exc)
    elif mapped.code == grpc.StatusCode.UNAUTHENTICATED:
        pass  # counted by the auth interceptor
    info = error_details_pb2.ErrorInfo(reason=mapped.reason, domain=ERROR_DOMAIN,
                                       metadata=mapped.metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = rpc_status.to_status(status_pb2.Status(
        code=mapped.code.value[0], message=mapped.message, details=[detail]))
    await context.abort(status.code, status.details, status.trailing_metadata)


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, authenticator: Authenticator, rules: Mapping[str, MethodRule],
                 metrics: Metrics, clock: Callable[[], dt.datetime] | None = None) -> None:
        self._authenticator = authenticator
        self._rules = rules
        self._metrics = metrics
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        found = await continuation(details)
        handler = found or _not_found_handler()
        rule = self._rules.get(details.method) if found is not None else MethodRule(
            any_authenticated_caller=True)
        metadata = _metadata(details)

        def check(context: grpc.aio.ServicerContext) -> None:
            state = current_call()
            try:
                caller = self._authenticator.authenticate(context.peer(), metadata, self._clock())
            except NotAuthenticated as exc:
                self._metrics.auth_failures.labels(exc.detail).inc()
                connection = self._authenticator.peer_connection(context.peer())
                if connection is not None:
                    state.audit_extra.update(describe_certificate(connection.leaf))
                    state.audit_extra["remote"] = connection.remote
                raise
            state.caller = caller
            if rule is None:
                raise PermissionDenied("no authorization rule for this method",
                                       reason="MISSING_SCOPE")
            missing = [s for s in rule.scopes if s not in caller.scopes]
            if missing:
                raise PermissionDenied(
                    "the caller lacks a scope this method requires",
                    metadata={"missing_scopes": ",".join(missing)},
                )

        def around(behavior: Behavior, streams: bool) -> Behavior:
            if streams:
                async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                    check(context)
                    async for item in _as_async_iter(behavior(request, context)):
                        yield item
                return stream

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                check(context)
                return await behavior(request, context)
            return unary

        return _wrap(handler, around)
