"""The abuse suite: what an outsider can throw at a running server, on SQLite and on PostgreSQL.

The server runs in its own process, so that its resident memory is measured alone (sampled all
along from /proc). Every gRPC method the server offers (found through its reflection service, so a
new method is covered without editing this file) gets a malformed message, an oversized one and an
empty one; every HTTP route (taken from the application's route table) gets an oversized body and
an oversized header; hostile documents and slow clients come last. For each: the expected status,
never INTERNAL, UNKNOWN or 500, the same status on both databases, memory within 64 MiB of the
baseline plus the largest message a request may carry, and a normal client still served.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from starlette.routing import Mount, Route

from server.config import GrpcLimits
from server.rpc.limits import message_limit
from server.rpc.rules import load_rules
from tests.server.ca.conftest import write_ca_files
from tests.server.documents.test_budgets import BUDGET, HOSTILE_PDFS, HOSTILE_XML
from tests.server.documents.test_signing_service import CALLERS, documents_section
from tests.server.payments.test_server import payments_section
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.fixtures import artifacts, doc_pki, font, trust, tsa  # noqa: F401
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki
from tests.support.server import ServerProcess, free_port, running_server, server_config_dict
from tests.support.softhsm import SoftHsm
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc
from vnegov.signing.v1 import documents_pb2 as pb

MiB = 1 << 20
# The bound: 64 MiB over the baseline, plus the documented per-request limits (the
# largest message a method accepts, 16 MiB for bulk methods, held once while it is parsed).
MEMORY_BOUND = 64 * MiB + GrpcLimits().max_bulk_message_bytes
BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


class Rss:
    """The server process's resident memory, sampled every 20 ms; ``peak`` since ``reset``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, self.now())

    def reset(self) -> None:
        self.peak = self.now()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


# Mounted ASGI applications without a route table (server/ca/http.py): their endpoints.
OPAQUE_MOUNTS = {
    "/pki": [("POST", "/pki/ocsp"), ("GET", "/pki/ocsp/MEUw"), ("POST", "/pki/tsa"),
             ("GET", "/pki/crl/x.crl"), ("GET", "/pki/certs/x.pem"), ("GET", "/pki/x")],
}


def config(pki: TestPki, directory: Path, url: str, documents_pki: DocumentPki, softhsm: SoftHsm,
           scopes: frozenset[str] = frozenset(), budget: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    """Plaintext gRPC as the agency of the documents' signer, holding every scope the server's
    methods name (so that each method gets as far as it can, past authorisation)."""
    directory.mkdir(parents=True, exist_ok=True)
    callers = [{**c, "scopes": sorted(scopes | set(c["scopes"]))}
               if c["agency_code"] == "000.00.00.H29" else c for c in CALLERS]
    http_port = free_port()
    identity = {"issuer": f"http://127.0.0.1:{http_port}/id", "argon2_time_cost": 1,
                "argon2_memory_kib": 1024, "argon2_parallelism": 1}
    extra = {"identity": identity,
             "ca": write_ca_files(pki, directory / "ca", f"http://127.0.0.1:{http_port}"),
             "documents": {**documents_section(documents_pki, softhsm, directory / "documents"),
                           "budget": BUDGET if budget is None else budget},
             "payments": payments_section(pki, directory),
             "auth": {"callers": callers, "plaintext_caller": "000.00.00.H29"},
             "limits": {"http": {"head_timeout_seconds": 1.0, "body_timeout_seconds": 1.0}}}
    data = server_config_dict(pki, directory, url, plaintext=True, grpc_port=free_port(),
                              http_port=http_port, extra=extra)
    data["server"]["public_url"] = f"http://127.0.0.1:{http_port}"
    return data


async def surface(pki: TestPki, directory: Path, url: str, documents_pki: DocumentPki,
                  softhsm: SoftHsm) -> tuple[list[tuple[str, str]], frozenset[str]]:
    """(method, path) of every route the application serves, path parameters filled in, and
    every scope its gRPC methods name."""
    data = config(pki, directory, url, documents_pki, softhsm)
    extra = {k: v for k, v in data.items()
             if k in {"identity", "ca", "documents", "payments", "auth", "limits"}}
    async with running_server(pki, directory, url, plaintext=True, extra=extra) as srv:
        routes = [r for m in srv.app._modules for r in m.http_routes()]
        services = [s.name for m in srv.app._modules for s in m.grpc_services()]
    scopes = frozenset(s for rule in load_rules(services).values() for s in rule.scopes)
    found = [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")]

    def walk(items: Any, prefix: str) -> None:
        for route in items:
            if isinstance(route, Mount) and not route.routes:
                # A plain ASGI application dispatching on its own: its paths are listed here, and
                # a new one fails this test until it is.
                assert prefix + route.path in OPAQUE_MOUNTS, route.path
                found.extend(OPAQUE_MOUNTS[prefix + route.path])
            elif isinstance(route, Mount):
                walk(route.routes, prefix + route.path)
            elif isinstance(route, Route):
                path = prefix + route.path
                for name, _ in route.param_convertors.items():
                    path = path.replace("{" + name + "}", "x").replace(
                        "{" + name + ":path}", "x")
                methods = sorted((route.methods or {"GET"}) - {"HEAD"})
                found.append(("POST" if "POST" in methods else methods[0], path))
            elif hasattr(route, "path"):  # plain ASGI endpoints
                found.append(("POST", prefix + route.path))
    walk(routes, "")
    return sorted(set(found)), scopes


def grpc_methods(target: str) -> list[tuple[str, bool, bool]]:
    """(full method name, client streaming, server streaming) of every method the server offers,
    read from its reflection service."""
    channel = grpc.insecure_channel(target)
    try:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        out = []
        for service_name in database.get_services():
            if service_name.startswith("grpc."):
                continue
            service = pool.FindServiceByName(service_name)
            for method in service.methods:
                out.append((f"/{service.full_name}/{method.name}", method.client_streaming,
                            method.server_streaming))
        return sorted(out)
    finally:
        channel.close()


async def call_raw(channel: grpc.aio.Channel, method: str, client_streaming: bool,
                   server_streaming: bool, payload: bytes) -> grpc.StatusCode:
    def identity(b: bytes) -> bytes:
        return b

    try:
        if client_streaming:
            async def one() -> Any:
                yield payload
            if server_streaming:
                async for _ in channel.stream_stream(method, identity, identity)(one(),
                                                                                 timeout=20):
                    pass
            else:
                await channel.stream_unary(method, identity, identity)(one(), timeout=20)
        elif server_streaming:
            async for _ in channel.unary_stream(method, identity, identity)(payload, timeout=20):
                pass
        else:
            await channel.unary_unary(method, identity, identity)(payload, timeout=20)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def healthy(http: httpx.AsyncClient, channel: grpc.aio.Channel) -> float:
    """A normal client is served, over HTTP and gRPC: the median time of ten rounds."""
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    times = []
    for _ in range(10):
        start = time.perf_counter()
        assert (await http.get("/healthz")).status_code == 200
        await admin.GetCaller(admin_pb2.GetCallerRequest(), timeout=10)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def within_usual_latency(seen: dict[str, Any], phase: str, latency: float, usual: float) -> None:
    """A normal client's latency after a phase, against the same measure before any abuse (a
    ratio in the same run, generous for a shared machine: what it catches is a server still
    busy with the abuse, which answers in seconds instead of milliseconds)."""
    seen[f"latency {phase}"] = latency
    assert latency < 10 * usual + 0.05, (phase, latency, usual)


async def raw_http(port: int, head: bytes, body: Iterator[bytes] | None = None) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        with contextlib.suppress(ConnectionError):
            for piece in body or ():
                writer.write(piece)
                await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), 30)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    return int(answer[9:12])


async def abuse(server: ServerProcess, routes: list[tuple[str, str]]) -> dict[str, Any]:
    """Everything, against one server; returns every status seen, keyed by what was sent."""
    assert server.proc is not None
    rss = Rss(server.proc.pid)
    seen: dict[str, Any] = {}
    target = f"127.0.0.1:{server.grpc_port}"
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30)
    channel = grpc.aio.insecure_channel(target)
    try:
        await healthy(http, channel)  # warm up
        usual = await healthy(http, channel)
        baseline = rss.now()
        rss.reset()

        # ------------------------------------------------------------ every gRPC method
        methods = await asyncio.to_thread(grpc_methods, target)
        served = {m.split("/")[1] for m, _, _ in methods}
        assert served >= {"vnegov.admin.v1.AdminService", "vnegov.identity.v1.IdentityService",
                          "vnegov.payments.v1.PaymentsService", "vnegov.signing.v1.SigningService",
                          "vnegov.signing.v1.CertificateAuthorityService"}, served
        limits = GrpcLimits()
        for method, cs, ss in methods:
            oversized = b"\x0a" + b"\xff" * 4 + b"\x0f" + b"a" * (message_limit(limits, method)
                                                                  + 1)
            for kind, payload in (("malformed", b"\xff\xff\xff\xff"), ("oversized", oversized),
                                  ("empty", b"")):
                code = await call_raw(channel, method, cs, ss, payload)
                seen[f"grpc {kind} {method}"] = code
                assert code not in BAD, (method, kind, code)
                if kind == "malformed":
                    assert code == grpc.StatusCode.INVALID_ARGUMENT, (method, code)
                if kind == "oversized":
                    assert code in {grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    grpc.StatusCode.INVALID_ARGUMENT}, (method, code)
        within_usual_latency(seen, "grpc", await healthy(http, channel), usual)
        seen["memory grpc"] = rss.peak - baseline

        # ------------------------------------------------------------ every HTTP route
        for method, path in routes:
            code = await raw_http(server.http_port, (
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream"
                f"\r\nContent-Length: {300 * MiB}\r\n\r\n").encode(),
                (b"\0" * 65536 for _ in range(64)))
            seen[f"http body {method} {path}"] = code
            assert code == 413, (method, path, code)
            code = await raw_http(server.http_port, (
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 64 * 1024}\r\n"
                "Content-Length: 0\r\n\r\n").encode())
            seen[f"http header {method} {path}"] = code
            assert code == 431, (method, path, code)
            code = (await http.request(method, path, content=b"\xff\x00{[<" * 10,
                                       params={"n": "9" * 30})).status_code
            seen[f"http garbage {method} {path}"] = code
            assert code < 500 or code == 503, (method, path, code)
        within_usual_latency(seen, "http", await healthy(http, channel), usual)
        seen["memory http"] = rss.peak - baseline

        # ------------------------------------------------------------ hostile documents
        s_channel = channel
        for name, document in [*(("pdf " + k, v) for k, v in HOSTILE_PDFS.items()),
                               *(("xml " + k, v) for k, v in HOSTILE_XML.items()),
                               ("xml 40 MB", b"<r>" + b"<e>x</e>" * (40 * MiB // 8) + b"</r>")]:
            fmt = pb.PDF if name.startswith("pdf") else pb.XML
            header = pb.VerifyDocumentRequest(header=pb.VerifyDocumentHeader(format=fmt))
            chunks = [pb.VerifyDocumentRequest(chunk=document[i:i + MiB])
                      for i in range(0, len(document), MiB)]
            request = [header.SerializeToString(), *(c.SerializeToString() for c in chunks)]

            async def stream(parts: list[bytes] = request) -> Any:
                for part in parts:
                    yield part
            try:
                await s_channel.stream_unary("/vnegov.signing.v1.SigningService/VerifyDocument",
                                             lambda b: b, lambda b: b)(stream(), timeout=60)
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
            seen[f"document {name}"] = code
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (name, code)
        within_usual_latency(seen, "documents", await healthy(http, channel), usual)
        seen["memory documents"] = rss.peak - baseline

        # ------------------------------------------------------------ slow clients
        slow = []
        for _ in range(50):  # slowloris: heads that never end
            reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append((reader, writer))
        stalled = channel.stream_unary("/vnegov.signing.v1.SigningService/VerifyDocument",
                                       lambda b: b, lambda b: b)
        never = asyncio.Event()

        async def header_then_nothing() -> Any:
            yield pb.VerifyDocumentRequest(header=pb.VerifyDocumentHeader(
                format=pb.PDF)).SerializeToString()
            await never.wait()
        stalled_calls = [asyncio.ensure_future(stalled(header_then_nothing(), timeout=30))
                         for _ in range(20)]
        within_usual_latency(seen, "during slow clients", await healthy(http, channel), usual)
        codes = []
        for reader, writer in slow:  # each is answered 408 after the head timeout
            answer = await asyncio.wait_for(reader.read(4096), 30)
            codes.append(int(answer[9:12]) if answer.startswith(b"HTTP/1.1 ") else 0)
            writer.close()
        seen["slow http"] = sorted(set(codes))
        assert set(codes) <= {408, 0}, codes
        for call in stalled_calls:
            call.cancel()
        await asyncio.gather(*stalled_calls, return_exceptions=True)
        within_usual_latency(seen, "slow", await healthy(http, channel), usual)
        seen["memory slow"] = rss.peak - baseline
        for key in ("memory grpc", "memory http", "memory documents", "memory slow"):
            assert seen[key] < MEMORY_BOUND, (key, seen[key] // MiB)
        return seen
    finally:
        rss.close()
        await http.aclose()
        await channel.close()


@pytest.mark.slow
@pytest.mark.postgres
async def test_abuse_on_sqlite_and_postgresql_gives_the_same_statuses(
        pki: TestPki, tmp_path: Path, postgres_templates: PostgresTemplates,
        doc_pki: DocumentPki, softhsm: SoftHsm) -> None:  # noqa: F811 (the fixture)
    results: dict[str, dict[str, Any]] = {}
    for backend in ("sqlite", "postgresql"):
        directory = tmp_path / backend
        directory.mkdir()
        with fresh_database(backend, postgres_templates, directory) as db:
            url = db.url.render_as_string(hide_password=False)
            routes, scopes = await surface(pki, directory / "routes", url, doc_pki, softhsm)
            assert ("POST", "/payments/platform/callback") in routes
            assert ("POST", "/id/token") in routes and ("POST", "/pki/tsa") in routes
            server = ServerProcess(config(pki, directory, url, doc_pki, softhsm, scopes),
                                   directory)
            try:
                await asyncio.to_thread(server.start, 60)
                results[backend] = await abuse(server, routes)
            finally:
                server.kill()
    statuses = {backend: {k: v for k, v in seen.items()
                          if not k.startswith(("memory", "latency"))}
                for backend, seen in results.items()}
    assert statuses["sqlite"] == statuses["postgresql"]
    print(sum(k.startswith("grpc malformed") for k in statuses["sqlite"]), "gRPC methods,",
          sum(k.startswith("http body") for k in statuses["sqlite"]), "HTTP routes; MiB over "
          "baseline:", {b: {k: v // MiB for k, v in r.items() if k.startswith("memory")}
                        for b, r in results.items()},
          "latency (ms):", {b: {k: round(v * 1000, 1) for k, v in r.items()
                                if k.startswith("latency")} for b, r in results.items()})


def scanned_pdf(size: int) -> bytes:
    """A valid one-page PDF carrying a ``size``-byte greyscale image (what a scanned dossier
    looks like to the server), uncompressed, with a correct cross-reference table."""
    import os

    side = int(size ** 0.5)
    pixels = os.urandom(side * side)
    content = b"q %d 0 0 %d 0 0 cm /Im0 Do Q" % (595, 842)
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /XObject << /Im0 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Length %d >>\nstream\n" % (side, side, len(pixels))
        + pixels + b"\nendstream",
    ]
    out = [b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"]
    offsets, position = [], len(out[0])
    for number, body in enumerate(bodies, start=1):
        part = b"%d 0 obj\n%s\nendobj\n" % (number, body)
        offsets.append(position)
        out.append(part)
        position += len(part)
    out.append(b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1))
    out.extend(b"%010d 00000 n \n" % o for o in offsets)
    out.append(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
               % (len(bodies) + 1, position))
    return b"".join(out)


@pytest.mark.slow
async def test_a_100_mb_pdf_signs_and_verifies_streamed_and_memory_returns(
        pki: TestPki, tmp_path: Path, sqlite_db: Any,
        doc_pki: DocumentPki, softhsm: SoftHsm) -> None:  # noqa: F811 (the fixture)
    """A 100 MB scanned PDF within every budget: signed and verified by a server process, both
    ways in chunks (the signed copy arrives in many messages, not one), the server's resident
    memory bounded while it works and back within 64 MiB of its baseline afterwards."""
    import hashlib

    document = scanned_pdf(100 * 1000 * 1000)
    server = ServerProcess(config(pki, tmp_path, sqlite_db.url.render_as_string(False),
                                  doc_pki, softhsm, budget={}), tmp_path)
    server.start(60)
    assert server.proc is not None
    rss = Rss(server.proc.pid)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}",
                                        options=[("grpc.max_receive_message_length", 8 * MiB)])
    try:
        from vnegov.signing.v1 import documents_pb2_grpc

        s = documents_pb2_grpc.SigningServiceStub(channel)
        await s.VerifyDocument(iter([pb.VerifyDocumentRequest(  # warm up
            header=pb.VerifyDocumentHeader(format=pb.PDF), chunk=scanned_pdf(10_000))]))
        baseline = rss.now()
        rss.reset()

        def sign_requests() -> Iterator[pb.SignDocumentRequest]:
            yield pb.SignDocumentRequest(header=pb.SignDocumentHeader(
                format=pb.PDF, agency_signer="ubnd-hcm"))
            for i in range(0, len(document), MiB):
                yield pb.SignDocumentRequest(chunk=document[i:i + MiB])

        signed = bytearray()
        messages = 0
        result = None
        async for response in s.SignDocument(sign_requests(), timeout=600):
            signed += response.chunk
            messages += 1
            if response.HasField("result"):
                result = response.result
        assert result is not None and result.size == len(signed) > len(document)
        assert result.sha256 == hashlib.sha256(signed).hexdigest()
        assert messages > 50  # streamed, not one message
        assert bytes(signed[:len(document)]) == document  # an incremental update

        def verify_requests() -> Iterator[pb.VerifyDocumentRequest]:
            yield pb.VerifyDocumentRequest(header=pb.VerifyDocumentHeader(format=pb.PDF))
            for i in range(0, len(signed), MiB):
                yield pb.VerifyDocumentRequest(chunk=bytes(signed[i:i + MiB]))

        report = await s.VerifyDocument(verify_requests(), timeout=600)
        assert report.indication == pb.TOTAL_PASSED, report.report_text
        peak = rss.peak - baseline
        await asyncio.sleep(1.0)
        after = rss.now() - baseline
        print(f"100 MB PDF: server peak {peak // MiB} MiB over baseline, "
              f"{after // MiB} MiB after")
        assert after < 64 * MiB, after // MiB
        assert peak < 64 * MiB + 2 * GrpcLimits().max_document_message_bytes + 256 * MiB
    finally:
        rss.close()
        await channel.close()
        server.kill()
