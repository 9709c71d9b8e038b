"""The TLS front under misuse, and plaintext development mode."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import grpc
import pytest

from server.storage.db import Database
from tests.support.pki import TestPki, pem
from tests.support.server import running_server
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc


async def test_garbage_and_non_h2_clients_do_not_disturb_the_server(
        pki: TestPki, tmp_path: Path, sqlite_db: Database) -> None:
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False)) as srv:
        port = srv.app.grpc_port
        # Not TLS at all.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 10)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) is not None
        writer.close()
        # TLS with a client certificate, but offering only HTTP/1.1: the handshake is refused.
        ctx = ssl.create_default_context(cadata=pem(pki.root.cert).decode())
        ctx.load_cert_chain(*_files(tmp_path, pki))
        ctx.set_alpn_protocols(["http/1.1"])
        with pytest.raises((ssl.SSLError, ConnectionError)):
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                 server_hostname="localhost")
            w.write(b"x")
            await w.drain()
            await asyncio.wait_for(r.read(1), 5)
            raise ConnectionError("closed")  # reached only if the server let it through
        # A proper client still works, and the front forgot the broken connections.
        caller = await admin_pb2_grpc.AdminServiceStub(srv.channel(pki.hcm)).GetCaller(
            admin_pb2.GetCallerRequest())
        assert caller.agency_code == "000.00.00.H29"
        front = srv.app._front
        assert front is not None and len(front.connections) == 1
        assert len(front.registry) == 1


def _files(tmp_path: Path, pki: TestPki) -> tuple[str, str]:
    (tmp_path / "c.pem").write_bytes(pki.hcm.chain_pem)
    (tmp_path / "c.key").write_bytes(pki.hcm.key_pem)
    return str(tmp_path / "c.pem"), str(tmp_path / "c.key")


async def test_many_concurrent_calls_through_the_front(pki: TestPki, tmp_path: Path,
                                                        sqlite_db: Database) -> None:
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False)) as srv:
        stubs = [admin_pb2_grpc.AdminServiceStub(srv.channel(c))
                 for c in (pki.hcm, pki.hanoi, pki.portal)]
        results = await asyncio.gather(*(stubs[i % 3].GetCaller(admin_pb2.GetCallerRequest())
                                         for i in range(300)))
        assert {r.agency_code for r in results} == {"000.00.00.H29", "000.00.00.H26",
                                                    "000.00.00.G22"}
        listed = await stubs[2].ListAuditEvents(admin_pb2.ListAuditEventsRequest(
            page_size=1000, filter='action = "/vnegov.admin.v1.AdminService/GetCaller"'))
        assert len(listed.audit_events) == 300


async def test_plaintext_mode_is_explicit_and_warns(pki: TestPki, tmp_path: Path,
                                                     sqlite_db: Database,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="server"):
        async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False),
                                  plaintext=True) as srv:
            stub = admin_pb2_grpc.AdminServiceStub(srv.plaintext_channel())
            caller = await stub.GetCaller(admin_pb2.GetCallerRequest())
    assert caller.authentication_method == admin_pb2.Caller.PLAINTEXT_DEVELOPMENT
    assert caller.agency_code == "000.00.00.G22"
    assert any("WITHOUT TLS" in r.getMessage() for r in caplog.records)


async def test_mtls_port_does_not_speak_plaintext(pki: TestPki, tmp_path: Path,
                                                   sqlite_db: Database) -> None:
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False)) as srv:
        stub = admin_pb2_grpc.AdminServiceStub(srv.plaintext_channel())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetCaller(admin_pb2.GetCallerRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_plaintext_that_arrives_while_the_upstream_connects_keeps_its_order() -> None:
    """The upstream connection is set a moment before the callback that writes what queued while
    it was connecting; data arriving in between must queue behind that, not overtake it (an
    HTTP/2 preface overtaken by a later frame makes the gRPC server drop the connection)."""
    from OpenSSL import SSL

    from server.tlsfront import PeerRegistry, TlsFront, _FrontConnection, _Upstream

    class Recording(asyncio.Transport):
        def __init__(self) -> None:
            super().__init__()
            self.written: list[bytes] = []

        def write(self, data: bytes) -> None:  # type: ignore[override]
            self.written.append(bytes(data))

    front = TlsFront(SSL.Context(SSL.TLS_METHOD), "\0unused", PeerRegistry())
    conn = _FrontConnection(front)
    conn.pending.append(b"PRI * HTTP/2.0")  # arrived while connecting
    upstream = _Upstream(conn)
    upstream.connection_made(transport := Recording())
    conn.upstream = upstream  # connected; the done callback has not run yet
    conn._forward(b"|next frame")
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    conn._connected(done)
    conn._forward(b"|later")
    assert b"".join(transport.written) == b"PRI * HTTP/2.0|next frame|later"
    assert conn.pending == []
