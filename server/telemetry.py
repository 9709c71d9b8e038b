"""OpenTelemetry traces, exported over OTLP (HTTP/protobuf) when ``[telemetry] otlp_endpoint`` is set.

One span per gRPC call and per HTTP request (continuing the caller's W3C ``traceparent``), one per
database statement, and one per outbound HTTP call (time-stamping authority, OCSP and CRL fetches,
the payment platform, relying parties' back-channel endpoints), all children of the call that
caused them. Spans carry the request id (``vnegov.request_id``) that the logs and the audit log
carry, so a trace, a log line and an audit event of one call are found from one another. Statement
spans carry the SQL text, never its parameters.

Off (the default) nothing is installed and the request path pays one attribute check per call.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from server.config import TelemetryConfig

__all__ = ["Telemetry", "TelemetryConfig", "active", "outbound_span"]

log = logging.getLogger(__name__)


_ACTIVE: Telemetry | None = None


def active() -> Telemetry | None:
    """The running server's telemetry, when traces are on."""
    return _ACTIVE


class Telemetry:
    """A tracer provider with an OTLP exporter, and the hooks that make spans."""

    def __init__(self, config: TelemetryConfig, *, exporter: Any = None) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            headers = dict(h.split("=", 1) for h in config.otlp_headers)
            exporter = OTLPSpanExporter(endpoint=config.otlp_endpoint, headers=headers,
                                        timeout=5)
        resource = Resource.create({"service.name": config.service_name,
                                    "service.instance.id": f"{socket.gethostname()}:{os.getpid()}"})
        self.provider = TracerProvider(resource=resource,
                                       sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)))
        self.processor = BatchSpanProcessor(exporter, schedule_delay_millis=1000)
        self.provider.add_span_processor(self.processor)
        self.tracer: Tracer = self.provider.get_tracer("vnegov.server")
        self._unpatch: list[Any] = []

    # ------------------------------------------------------------------ lifecycle
    def install(self, engine: Any = None) -> None:
        global _ACTIVE
        _ACTIVE = self
        if engine is not None:
            self._instrument_engine(engine)
        self._instrument_outbound()

    def shutdown(self) -> None:
        global _ACTIVE
        for undo in reversed(self._unpatch):
            undo()
        self._unpatch.clear()
        if _ACTIVE is self:
            _ACTIVE = None
        self.provider.shutdown()

    # ------------------------------------------------------------------ server spans
    def start_server_span(self, name: str, carrier: Mapping[str, str], kind: str,
                          attributes: Mapping[str, Any]) -> tuple[Span, object]:
        """A server span continuing ``carrier``'s traceparent, made current; returns the span and
        the token to :meth:`end_server_span` with."""
        parent = extract(carrier)
        span = self.tracer.start_span(name, context=parent, kind=SpanKind.SERVER,
                                      attributes=dict(attributes))
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        span.set_attribute("vnegov.protocol", kind)
        return span, token

    @staticmethod
    def end_server_span(span: Span, token: object, *, error: str = "",
                        attributes: Mapping[str, Any] | None = None) -> None:
        if attributes:
            span.set_attributes(dict(attributes))
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()
        with contextlib.suppress(ValueError):  # detached in another context (a cancelled task)
            otel_context.detach(token)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ database
    def _instrument_engine(self, engine: Any) -> None:
        from sqlalchemy import event

        tracer = self.tracer
        system = engine.dialect.name
        key = "vnegov_span"

        def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                   executemany: bool) -> None:
            if not trace.get_current_span().get_span_context().is_valid:
                return  # statements outside any call (background work) are not traced
            span = tracer.start_span(statement.split(None, 1)[0].upper() if statement else "SQL",
                                     kind=SpanKind.CLIENT, attributes={
                                         "db.system": system,
                                         "db.statement": statement[:2000]})
            conn.info.setdefault(key, []).append(span)

        def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                  executemany: bool) -> None:
            spans = conn.info.get(key)
            if spans:
                spans.pop().end()

        def failed(exception_context: Any) -> None:
            conn = exception_context.connection
            spans = conn.info.get(key) if conn is not None else None
            if spans:
                span = spans.pop()
                span.set_status(Status(StatusCode.ERROR,
                                       type(exception_context.original_exception).__name__))
                span.end()

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        event.listen(engine, "handle_error", failed)
        for name, hook in (("before_cursor_execute", before), ("after_cursor_execute", after),
                           ("handle_error", failed)):
            self._unpatch.append(lambda n=name, h=hook: event.remove(engine, n, h))

    # ------------------------------------------------------------------ outbound HTTP
    def _instrument_outbound(self) -> None:
        """Spans for every outbound HTTP call made with httpx or requests (the TSA and payment
        platform clients, OCSP/CRL fetches during validation, back-channel logout)."""
        import httpx
        import requests
        from opentelemetry.propagate import inject

        def traced_sync(original: Any) -> Any:
            def send(self_: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
                with outbound_span(request.method, str(request.url)) as span:
                    if span is not None:
                        inject(request.headers)
                    response = original(self_, request, *args, **kwargs)
                    if span is not None:
                        span.set_attribute("http.response.status_code", response.status_code)
                    return response
            return send

        def traced_async(original: Any) -> Any:
            async def send(self_: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
                with outbound_span(request.method, str(request.url)) as span:
                    if span is not None:
                        inject(request.headers)
                    response = await original(self_, request, *args, **kwargs)
                    if span is not None:
                        span.set_attribute("http.response.status_code", response.status_code)
                    return response
            return send

        for owner, name, wrap in ((httpx.Client, "send", traced_sync),
                                  (httpx.AsyncClient, "send", traced_async),
                                  (requests.Session, "send", traced_sync)):
            original = getattr(owner, name)
            setattr(owner, name, wrap(original))
            self._unpatch.append(lambda o=owner, n=name, f=original: setattr(o, n, f))


@contextlib.contextmanager
def outbound_span(method: str, url: str) -> Iterator[Span | None]:
    """A client span for an outbound call made during a traced call (else ``None``)."""
    telemetry = _ACTIVE
    if telemetry is None or not trace.get_current_span().get_span_context().is_valid:
        # Off, or outside any call (background work, the span exporter's own requests).
        yield None
        return
    host = url.split("/", 3)[2] if "://" in url else ""
    started = time.perf_counter()
    with telemetry.tracer.start_as_current_span(
            f"{method} {host}", kind=SpanKind.CLIENT,
            attributes={"http.request.method": method, "url.full": url.split("?", 1)[0],
                        "server.address": host}) as span:
        try:
            yield span
        finally:
            span.set_attribute("vnegov.duration_ms", 1000 * (time.perf_counter() - started))


def copy_context() -> contextvars.Context | None:
    """The current context for work handed to a thread, when traces are on."""
    return contextvars.copy_context() if _ACTIVE is not None else None
