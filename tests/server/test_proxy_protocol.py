"""PROXY protocol v2 on the embedded mutual-TLS front, for balancers that pass TLS through: real
HAProxy with deploy/haproxy/passthrough.cfg, and a relay that announces a chosen client address to
show the replica records the address from the header (and only from peers it was told to trust)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from server.storage.db import Database
from server.tlsfront import PROXY_V2_SIGNATURE, ProxyHeaderError, parse_proxy_v2
from tests.support.balancer import Balancer, Replica
from tests.support.pki import TestPki
from tests.support.server import RunningServer, running_server
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc


def proxy_v2(ip: str, port: int, *, local: bool = False) -> bytes:
    src = ipaddress.IPv4Address(ip).packed
    body = src + ipaddress.IPv4Address("127.0.0.1").packed + port.to_bytes(2, "big") + \
        (50051).to_bytes(2, "big")
    return PROXY_V2_SIGNATURE + bytes([0x20 if local else 0x21, 0x11]) + \
        len(body).to_bytes(2, "big") + body


def test_parse_proxy_v2() -> None:
    header = proxy_v2("198.51.100.7", 4242)
    assert parse_proxy_v2(header + b"\x16\x03") == (len(header), "198.51.100.7:4242")
    assert parse_proxy_v2(header[:10]) is None and parse_proxy_v2(header[:20]) is None
    assert parse_proxy_v2(proxy_v2("198.51.100.7", 1, local=True)) == (len(header), None)
    for bad in (b"\x16\x03\x01\x02\x00", b"GET / HTTP/1.1\r\n\r\n",
                PROXY_V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12),  # version 3
                PROXY_V2_SIGNATURE + b"\x21\x11\x00\x04" + bytes(4)):  # address block too short
        with pytest.raises(ProxyHeaderError):
            parse_proxy_v2(bad)


class Relay:
    """Accepts TCP connections and relays them, bytes untouched, to ``target``, first writing
    ``header`` (a PROXY v2 header announcing another client address, or nothing)."""

    def __init__(self, target: int, header: bytes) -> None:
        self.target, self.header = target, header
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        up_writer.write(self.header)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def replica(pki: TestPki, tmp_path: Path, sqlite_db: Database
                  ) -> AsyncIterator[RunningServer]:
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False), extra={
            "server": {"proxy_protocol_from": ["127.0.0.1"], "admin_port": 0}}) as running:
        yield running


async def _refusal_remotes(stub: admin_pb2_grpc.AdminServiceStub) -> list[str]:
    events = await stub.ListAuditEvents(admin_pb2.ListAuditEventsRequest(
        filter='outcome = "UNAUTHENTICATED"', page_size=100))
    return [e.details.get("remote", "") for e in events.audit_events]


async def _via(port: int, srv: RunningServer, client: object) -> admin_pb2_grpc.AdminServiceStub:
    from tests.support.pki import pem

    root = pem(srv.pki.root.cert)
    creds = grpc.ssl_channel_credentials(root) if client is None else \
        grpc.ssl_channel_credentials(root, client.key_pem, client.chain_pem)  # type: ignore[attr-defined]
    channel = grpc.aio.secure_channel(f"localhost:{port}", creds)
    srv.channels.append(channel)
    return admin_pb2_grpc.AdminServiceStub(channel)


async def test_the_address_in_the_proxy_header_is_the_one_audited(replica: RunningServer) -> None:
    relay = Relay(replica.app.grpc_port, proxy_v2("198.51.100.7", 4242))
    port = await relay.start()
    try:
        hcm = await _via(port, replica, replica.pki.hcm)
        assert (await hcm.GetCaller(admin_pb2.GetCallerRequest())).agency_code == \
            "000.00.00.H29"
        foreign = await _via(port, replica, replica.pki.foreign)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await foreign.GetCaller(admin_pb2.GetCallerRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        portal = await _via(port, replica, replica.pki.portal)
        assert "198.51.100.7:4242" in await _refusal_remotes(portal)
    finally:
        await relay.close()


async def test_a_trusted_peer_without_a_proxy_header_is_dropped(replica: RunningServer) -> None:
    # 127.0.0.1 must speak PROXY v2 first: a plain TLS client from there gets no handshake.
    stub = admin_pb2_grpc.AdminServiceStub(replica.channel(replica.pki.hcm))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCaller(admin_pb2.GetCallerRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_an_untrusted_peer_cannot_claim_an_address(
        pki: TestPki, tmp_path: Path, sqlite_db: Database) -> None:
    # The front trusts nobody's PROXY header here: one sent anyway breaks the TLS handshake.
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False)) as srv:
        relay = Relay(srv.app.grpc_port, proxy_v2("198.51.100.7", 4242))
        port = await relay.start()
        try:
            stub = await _via(port, srv, pki.hcm)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetCaller(admin_pb2.GetCallerRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            await relay.close()


@pytest.mark.slow
async def test_haproxy_passthrough_with_proxy_protocol(replica: RunningServer,
                                                       tmp_path: Path) -> None:
    balancer = Balancer(replica.pki, tmp_path / "haproxy", [
        Replica(f"127.0.0.1:{replica.app.grpc_port}", replica.app.http_port,
                replica.app.admin_port)], passthrough=True)
    balancer.start()
    try:
        balancer.wait_up(1, backend="vnegov_grpc_tls")
        stub = admin_pb2_grpc.AdminServiceStub(balancer.channel(replica.pki.hcm))
        for _ in range(3):
            caller = await stub.GetCaller(admin_pb2.GetCallerRequest())
            assert caller.agency_code == "000.00.00.H29"
        foreign = admin_pb2_grpc.AdminServiceStub(balancer.channel(replica.pki.foreign))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await foreign.GetCaller(admin_pb2.GetCallerRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # The front requires the header from 127.0.0.1: these calls worked because HAProxy sent
        # it, and the refusal records the address it announced.
        portal = admin_pb2_grpc.AdminServiceStub(balancer.channel(replica.pki.portal))
        remotes = await _refusal_remotes(portal)
        assert remotes and all(r.startswith("127.0.0.1:") for r in remotes)
    finally:
        await balancer.close_channels()
        balancer.stop()
