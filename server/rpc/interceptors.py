"""The interceptor every gRPC call passes through, once.

For each call, in order:

1. **Observe**: give the call a request id (the caller's ``x-request-id`` if well formed) and count
   it.
2. **Authenticate and authorise**: find the caller (client certificate through the TLS front, or a
   bearer token) and check the scopes the method's ``.proto`` option requires. Failures raise
   :class:`~server.errors.NotAuthenticated` / :class:`~server.errors.PermissionDenied`.
3. **Check the request**: a message over the method's size limit or that does not parse (see
   :mod:`server.rpc.limits`) and, for every message (each one of a request stream as the
   servicer reads it), the field constraints its ``.proto`` declares (:mod:`server.rpc.validation`)
   fail with INVALID_ARGUMENT before any servicer code sees them.
4. Run the servicer.
5. **Map errors**: any exception becomes a ``google.rpc.Status`` through the one table in
   :mod:`server.errors`; unknown exceptions become INTERNAL with only the request id.
6. **Record**: metrics, one JSON log line and one audit event. The answer (response or error
   status; for a response stream, its last message and the status) goes out only after the audit
   event is committed, so every answer a caller sees is in the audit log; when the event cannot
   be committed, the call is answered UNAVAILABLE (``AUDIT_UNAVAILABLE``) instead. Response
   streams are read one message ahead for this (they are finite answers, such as a signed
   document in chunks, not live feeds); a stream that fails after it was recorded (the caller
   went away while its last message was being sent) keeps the outcome it was recorded with.

One interceptor rather than three keeps the per-call cost to one wrapper, and the wrapped handler
of each method is built once and reused. Calls to methods the server does not implement are
authenticated and audited too, then answered UNIMPLEMENTED.
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
from server.config import GrpcLimits
from server.errors import (
    ERROR_DOMAIN,
    InvalidArgument,
    NotAuthenticated,
    PermissionDenied,
    Unavailable,
    Unimplemented,
    map_exception,
)
from server.metrics import Metrics
from server.rpc.limits import GuardedDeserializer, Rejected, message_limit
from server.rpc.rules import MethodRule
from server.rpc.state import CallState, reset_current, set_current
from server.rpc.validation import RequestValidator
from server.telemetry import Telemetry

__all__ = ["CallInterceptor", "CallsInFlight"]

log = logging.getLogger("server.rpc")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
_UNKNOWN_METHOD_RULE = MethodRule(any_authenticated_caller=True)

Behavior = Callable[..., Any]
_END: Any = object()  # the end of a response stream
# Streams that stay open as long as their client wants: not waited for at shutdown.
_OPEN_ENDED = frozenset({
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
})


class CallsInFlight:
    """How many calls the servers sharing it are serving (from their start until they are
    recorded, just before the answer goes out), open-ended streams aside: a stopping server waits
    for them to end before its gRPC servers stop (:meth:`server.app.Application.stop`)."""

    def __init__(self) -> None:
        self.count = 0


class _Failure(Exception):
    """A failure already turned into a status, sent once the call is recorded."""

    def __init__(self, code: grpc.StatusCode, details: str,
                 trailing: tuple[tuple[str, str | bytes], ...]) -> None:
        super().__init__(details)
        self.code, self.details, self.trailing = code, details, trailing


def _not_found_handler() -> grpc.RpcMethodHandler:
    async def unimplemented(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise Unimplemented("method not implemented")

    return grpc.unary_unary_rpc_method_handler(unimplemented)


def _check(message: Any, validator: RequestValidator | None,
           guard: GuardedDeserializer | None = None) -> Any:
    if guard is not None and isinstance(message, bytes | bytearray | memoryview):
        message = guard(bytes(message))
    if isinstance(message, Rejected):
        raise InvalidArgument(message.message, reason=message.reason,
                              metadata={"size": str(message.size)})
    if validator is not None and hasattr(message, "DESCRIPTOR"):  # not an unknown method's bytes
        validator.check(message)
    return message


async def _checked_stream(requests: AsyncIterator[Any], validator: RequestValidator | None,
                          guard: GuardedDeserializer | None = None) -> AsyncIterator[Any]:
    async for message in requests:
        yield _check(message, validator, guard)


def _as_async_iter(result: Any) -> AsyncIterator[Any]:
    if inspect.isasyncgen(result) or hasattr(result, "__aiter__"):
        return result  # type: ignore[no-any-return]

    async def from_sync() -> AsyncIterator[Any]:
        for item in result:
            yield item

    return from_sync()


class CallInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, *, authenticator: Authenticator, rules: Mapping[str, MethodRule],
                 metrics: Metrics, audit: AuditWriter,
                 clock: Callable[[], dt.datetime] | None = None,
                 limits: GrpcLimits | None = None,
                 telemetry: Telemetry | None = None,
                 in_flight: CallsInFlight | None = None) -> None:
        self._telemetry = telemetry
        self._in_flight = in_flight or CallsInFlight()
        self._limits = limits or GrpcLimits()
        self._validator = RequestValidator() if self._limits.validate_requests else None
        self._authenticator = authenticator
        self._rules = rules
        self._metrics = metrics
        self._audit = audit
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        # Wrapped handlers of implemented methods, built on first use. Unknown methods are wrapped
        # per call and never cached, so callers cannot grow this table.
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = details.method
        wrapped = self._handlers.get(method)
        if wrapped is None:
            handler = await continuation(details)
            if handler is None:
                return self._wrap(_not_found_handler(), method, _UNKNOWN_METHOD_RULE)
            wrapped = self._wrap(handler, method, self._rules.get(method))
            self._handlers[method] = wrapped
        return wrapped

    # ------------------------------------------------------------------ wrapping
    def _wrap(self, handler: grpc.RpcMethodHandler, method: str,
              rule: MethodRule | None) -> grpc.RpcMethodHandler:
        service, _, name = method.lstrip("/").rpartition("/")
        labels = (service, name)
        parse = handler.request_deserializer
        guard = GuardedDeserializer(parse, message_limit(self._limits, method)) \
            if parse is not None else None
        if guard is not None:
            # grpcio deserialises through this handler's deserialiser, except for methods
            # registered with add_registered_method_handlers, which arrive as bytes: the
            # guard parses those in _check.
            handler = handler._replace(request_deserializer=guard)
        streamed = handler.stream_unary is not None or handler.stream_stream is not None
        validator = self._validator

        def checked(request: Any) -> Any:
            if streamed:
                return _checked_stream(request, validator, guard)
            return _check(request, validator, guard)

        def unary(behavior: Behavior) -> Behavior:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                state = self._begin(method, labels, context)
                token = set_current(state)
                failed: BaseException | None = None
                response = None
                try:
                    self._authorize(state, rule, context)
                    response = await behavior(checked(request), context)
                except BaseException as exc:
                    failed = self._map(exc, state)
                finally:
                    unrecorded = await self._record(state, labels, context, failed)
                    reset_current(token)
                await _answer_failure(unrecorded or failed, context)
                return response
            return call

        def streaming(behavior: Behavior) -> Behavior:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                state = self._begin(method, labels, context)
                token = set_current(state)
                failed: BaseException | None = None
                unrecorded: _Failure | None = None
                recorded = False
                items: AsyncIterator[Any] | None = None
                try:
                    self._authorize(state, rule, context)
                    # One message ahead: the last one (for a signed document, the part that
                    # carries the result) goes out only once the call is recorded.
                    items = _as_async_iter(behavior(checked(request), context))
                    item = await anext(items, _END)
                    while item is not _END:
                        try:
                            following = await anext(items, _END)
                        except Exception:  # failed after `item`: it goes out, then the error
                            yield item
                            raise
                        if following is _END:
                            recorded = True
                            unrecorded = await self._record(state, labels, context, None)
                            if unrecorded is not None:
                                break
                        yield item
                        item = following
                except BaseException as exc:
                    failed = self._map(exc, state)
                finally:
                    close = getattr(items, "aclose", None)
                    if close is not None:  # the servicer's own clean-up runs now, not at GC
                        try:
                            await close()
                        except Exception:
                            log.exception("clean-up of a response stream failed")
                    if not recorded:
                        unrecorded = await self._record(state, labels, context, failed)
                    reset_current(token)
                await _answer_failure(unrecorded or failed, context)
            return call

        if handler.unary_unary is not None:
            return handler._replace(unary_unary=unary(handler.unary_unary))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=streaming(handler.unary_stream))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=unary(handler.stream_unary))
        return handler._replace(stream_stream=streaming(handler.stream_stream))

    # ------------------------------------------------------------------ 1. observe
    def _begin(self, method: str, labels: tuple[str, str],
               context: grpc.aio.ServicerContext) -> CallState:
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        incoming = metadata.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        state = CallState(request_id, method)
        state.metadata = metadata
        if self._telemetry is not None:
            service, _, name = method.lstrip("/").rpartition("/")
            state.span, state.span_token = self._telemetry.start_server_span(
                method.lstrip("/"), metadata, "grpc", {
                    "rpc.system": "grpc", "rpc.service": service, "rpc.method": name,
                    "vnegov.request_id": request_id})
        self._metrics.grpc_started.labels(*labels).inc()
        self._audit.call_started()
        if method not in _OPEN_ENDED:
            self._in_flight.count += 1
        # Sent with the status (no extra write per call); a failure re-adds it to its trailers.
        context.set_trailing_metadata((("x-request-id", request_id),))
        return state

    # ------------------------------------------------------------------ 2. authenticate
    def _authorize(self, state: CallState, rule: MethodRule | None,
                   context: grpc.aio.ServicerContext) -> None:
        peer = context.peer()
        try:
            caller = self._authenticator.authenticate(peer, state.metadata, self._clock())
        except NotAuthenticated as exc:
            self._metrics.auth_failures.labels(exc.detail).inc()
            connection = self._authenticator.peer_connection(peer, state.metadata)
            if connection is not None:
                state.audit_extra.update(describe_certificate(connection.leaf))
                state.audit_extra["remote"] = connection.remote
            raise
        state.caller = caller
        if rule is None:
            raise PermissionDenied("no authorization rule for this method")
        missing = [s for s in rule.scopes if s not in caller.scopes]
        if missing:
            raise PermissionDenied("the caller lacks a scope this method requires",
                                   metadata={"missing_scopes": ",".join(missing)})

    # ------------------------------------------------------------------ 4. map errors
    def _map(self, exc: BaseException, state: CallState) -> BaseException:
        """The exception to answer with: a :class:`_Failure` for anything mapped through the table;
        cancellations and aborts pass through unchanged."""
        if not isinstance(exc, Exception) or isinstance(exc, grpc.aio.AbortError):
            return exc
        mapped = map_exception(exc, state.request_id)
        state.code, state.reason, state.audit_detail = mapped.code, mapped.reason, \
            mapped.audit_detail
        if mapped.code == grpc.StatusCode.INTERNAL:
            log.error("unhandled exception in %s", state.method, exc_info=exc)
        info = error_details_pb2.ErrorInfo(reason=mapped.reason, domain=ERROR_DOMAIN,
                                           metadata=mapped.metadata)
        details = []
        for message in (info, *mapped.details):
            detail = any_pb2.Any()
            detail.Pack(message)
            details.append(detail)
        status = rpc_status.to_status(status_pb2.Status(
            code=mapped.code.value[0], message=mapped.message, details=details))
        return _Failure(status.code, status.details,
                        (*status.trailing_metadata, ("x-request-id", state.request_id)))

    # ------------------------------------------------------------------ 5. record
    async def _record(self, state: CallState, labels: tuple[str, str],
                      context: grpc.aio.ServicerContext,
                      failed: BaseException | None) -> _Failure | None:
        """Record the call; when its audit event cannot be committed, the failure to answer
        with instead (UNAVAILABLE, AUDIT_UNAVAILABLE): no answer goes out unrecorded."""
        if state.method not in _OPEN_ENDED:
            self._in_flight.count -= 1
        if failed is not None and state.code == grpc.StatusCode.OK:
            # Cancelled by the client, or aborted by code that bypassed the error table.
            code = context.code()
            state.code = code if isinstance(code, grpc.StatusCode) and \
                code != grpc.StatusCode.OK else grpc.StatusCode.CANCELLED
        elapsed = time.perf_counter() - state.started
        self._metrics.grpc_handled.labels(*labels, state.code.name).inc()
        self._metrics.grpc_latency.labels(*labels).observe(elapsed)
        caller = state.caller.audit_name if state.caller is not None else "anonymous"
        if log.isEnabledFor(logging.INFO):
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
            await self._audit.record(event, ends_call=True)
        except Exception:
            self._metrics.audit_failures.inc()
            log.error("audit event could not be written", extra={"method": state.method})
            unavailable = self._map(Unavailable("the server cannot record the call: try again",
                                                reason="AUDIT_UNAVAILABLE"), state)
            assert isinstance(unavailable, _Failure)
            self._end_span(state)
            return unavailable
        self._end_span(state)
        return None

    def _end_span(self, state: CallState) -> None:
        if self._telemetry is None or state.span is None:
            return
        failed = state.code != grpc.StatusCode.OK
        attributes = {"rpc.grpc.status_code": state.code.value[0], "vnegov.caller":
                      state.caller.audit_name if state.caller is not None else "anonymous"}
        if state.reason:
            attributes["vnegov.reason"] = state.reason
        self._telemetry.end_server_span(state.span, state.span_token,
                                        error=state.code.name if failed else "",
                                        attributes=attributes)
        state.span = None


async def _answer_failure(failed: BaseException | None,
                          context: grpc.aio.ServicerContext) -> None:
    if failed is None:
        return
    if isinstance(failed, _Failure):
        await context.abort(failed.code, failed.details, failed.trailing)
    raise failed
