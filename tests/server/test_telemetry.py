"""Traces over OTLP: a real server exports to a collector on loopback (OTLP/HTTP protobuf, decoded
with the OpenTelemetry protos): a gRPC call's server span continues the caller's traceparent and
carries its request id, its database statements are child spans, HTTP requests have spans, and
outbound HTTP calls get client spans with the trace context injected."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from server.storage.db import Database
from tests.support.pki import TestPki
from tests.support.server import running_server
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class Collector:
    """Records OTLP/HTTP trace exports, and the headers of any other request."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.headers: list[dict[str, str]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    for resource in request.resource_spans:
                        for scope in resource.scope_spans:
                            collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                collector.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def _attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = value.string_value or value.int_value or value.double_value
    return out


async def test_traces_of_a_call_reach_the_collector(pki: TestPki, tmp_path: Path,
                                                    sqlite_db: Database,
                                                    collector: Collector) -> None:
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False), extra={
            "telemetry": {"otlp_endpoint": collector.url + "/v1/traces",
                          "service_name": "vnegov-test"}}) as srv:
        stub = admin_pb2_grpc.AdminServiceStub(srv.channel(pki.portal))
        await stub.ListAuditEvents(admin_pb2.ListAuditEventsRequest(page_size=5), metadata=(
            ("traceparent", f"00-{TRACE_ID}-{PARENT}-01"), ("x-request-id", "trace-test-0001")))
        async with httpx.AsyncClient(base_url=srv.http_url) as http:
            assert (await http.get("/healthz")).status_code == 200
        telemetry = srv.app.telemetry
        assert telemetry is not None
        with telemetry.tracer.start_as_current_span("outbound parent"):
            async with httpx.AsyncClient() as client:
                await client.get(collector.url + "/probe")
    # Stopping the server flushes the exporter.
    spans = collector.spans
    call = next(s for s in spans if s.name == "vnegov.admin.v1.AdminService/ListAuditEvents")
    assert call.trace_id.hex() == TRACE_ID and call.parent_span_id.hex() == PARENT
    assert _attrs(call)["vnegov.request_id"] == "trace-test-0001"
    assert "rpc.grpc.status_code" in _attrs(call) and call.kind == call.SPAN_KIND_SERVER
    statements = [s for s in spans if "db.statement" in _attrs(s)
                  and s.trace_id == call.trace_id]
    assert statements, "no database spans in the call's trace"
    assert all("audit_events" in _attrs(s)["db.statement"] or s.parent_span_id
               for s in statements)
    assert any(s.name == "HTTP GET /healthz" for s in spans)
    [parent] = [s for s in spans if s.name == "outbound parent"]
    [outbound] = [s for s in spans if s.name.startswith("GET 127.0.0.1")]
    assert outbound.parent_span_id == parent.span_id
    assert collector.headers and "traceparent" in collector.headers[-1]
    assert collector.headers[-1]["traceparent"].split("-")[1] == outbound.trace_id.hex()


async def test_no_endpoint_no_telemetry(pki: TestPki, tmp_path: Path,
                                        sqlite_db: Database) -> None:
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False)) as srv:
        assert srv.app.telemetry is None
        assert srv.app.metrics is not None
