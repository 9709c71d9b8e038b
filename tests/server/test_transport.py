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
