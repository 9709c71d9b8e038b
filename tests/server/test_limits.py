"""Limits before work: request heads, bodies and rates on the HTTP front; message sizes, malformed
messages, streams per connection and keepalive on the gRPC server. Each attack is sent as an
outsider would (raw sockets, raw HTTP/2 frames, raw protobuf bytes) against a real server."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from server.http.client import TrustedProxies, resolve_client_address
from server.http.limits import RateLimiter, route_class
from server.storage.db import Database
from tests.support.pki import TestPki
from tests.support.server import RunningServer, running_server
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc

CALLBACK = "/payments/platform/callback"

LIMITS = {"limits": {"http": {"head_timeout_seconds": 1.0, "body_timeout_seconds": 1.0,
                              "callback": {"rate_per_second": 0.01, "burst": 3}},
                     "grpc": {"min_ping_interval_seconds": 300, "max_ping_strikes": 1}}}


@pytest.fixture
async def srv(pki: TestPki, tmp_path: Path, sqlite_db: Database) -> Any:
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False),
                              plaintext=True, extra=LIMITS) as running:
        yield running


async def exchange(port: int, data: bytes, *, read_until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1 << 20) if not read_until_close
                                      else reader.read(), 30)
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    return int(answer[9:12])


# ------------------------------------------------------------------ request heads
async def test_a_huge_header_is_refused_431_before_it_is_read_whole(srv: RunningServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.app.http_port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent = 0
    try:
        # 16 MiB of header value: the server answers and closes long before the end.
        for _ in range(256):
            writer.write(b"a" * 65536)
            await writer.drain()
            sent += 65536
    except (ConnectionResetError, BrokenPipeError):
        pass
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    assert status_of(answer) == 431
    assert sent < 16 << 20 or b"connection: close" in answer


async def test_too_many_headers_are_refused_431(srv: RunningServer) -> None:
    head = b"".join(b"X-H%d: v\r\n" % i for i in range(100))
    answer = await exchange(srv.app.http_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + head
                            + b"\r\n")
    assert status_of(answer) == 431


async def test_a_long_url_is_refused_414(srv: RunningServer) -> None:
    answer = await exchange(srv.app.http_port,
                            b"GET /healthz?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(answer) == 414


async def test_a_slow_head_is_dropped_408(srv: RunningServer) -> None:
    # One byte and then nothing: the connection is answered and closed at head_timeout.
    answer = await exchange(srv.app.http_port, b"G")
    assert status_of(answer) == 408


async def test_an_idle_connection_that_sends_nothing_is_closed(srv: RunningServer) -> None:
    answer = await exchange(srv.app.http_port, b"")
    assert status_of(answer) == 408


async def test_a_normal_request_still_works(srv: RunningServer) -> None:
    answer = await exchange(srv.app.http_port,
                            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 200


async def test_a_small_response_leaves_in_one_send(srv: RunningServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # uvicorn writes a response's head and body separately; the server joins what is written in
    # one turn of the event loop, so a small answer is one send and one TCP segment, not two.
    import asyncio.selector_events as selector_events

    sent: list[bytes] = []
    real = selector_events._SelectorSocketTransport.write

    def recording(self: Any, data: Any) -> None:
        sent.append(bytes(data))
        real(self, data)

    monkeypatch.setattr(selector_events._SelectorSocketTransport, "write", recording)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.app.http_port)
    try:
        for _ in range(2):  # and again on the kept-alive connection
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert length > 0 and status_of(head) == 200
            await asyncio.wait_for(reader.readexactly(length), 30)
    finally:
        writer.close()
    answers = [data for data in sent if data != request]
    assert len(answers) == 2, [a[:40] for a in answers]
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
    assert all(len(a) > a.index(b"\r\n\r\n") + 4 for a in answers)  # head and body together


# ------------------------------------------------------------------ bodies
async def test_a_declared_oversized_body_is_refused_413_without_reading_it(
        srv: RunningServer) -> None:
    # 300 MB announced, none of it sent: the answer comes at once.
    answer = await exchange(srv.app.http_port, b"POST " + CALLBACK.encode() + b" HTTP/1.1\r\n"
                            b"Host: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 300000000\r\n\r\n")
    assert status_of(answer) == 413


async def test_a_chunked_body_is_cut_at_the_limit_413(srv: RunningServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.app.http_port)
    writer.write(b"POST " + CALLBACK.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    try:
        for _ in range(1000):  # up to 64 MB, if nobody stopped us
            writer.write(b"10000\r\n" + b"{" * 65536 + b"\r\n")
            await writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        pass
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    assert status_of(answer) == 413


async def test_a_stalled_body_is_answered_408(srv: RunningServer) -> None:
    answer = await exchange(srv.app.http_port, b"POST " + CALLBACK.encode() + b" HTTP/1.1\r\n"
                            b"Host: x\r\nContent-Length: 100\r\n\r\n{\"a\"")
    assert status_of(answer) == 408


# ------------------------------------------------------------------ rates
async def test_callbacks_over_the_rate_are_429_with_retry_after(srv: RunningServer) -> None:
    request = (b"POST " + CALLBACK.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Content-Length: 2\r\n\r\n{}")
    answers = [await exchange(srv.app.http_port, request) for _ in range(4)]
    assert [status_of(a) for a in answers[:3]] == [200, 200, 200]
    assert status_of(answers[3]) == 429
    assert b"retry-after: " in answers[3].lower()
    retry = int(answers[3].lower().split(b"retry-after: ")[1].split(b"\r\n")[0])
    assert retry >= 1


async def test_a_forged_x_forwarded_for_does_not_buy_a_new_bucket(srv: RunningServer) -> None:
    # No trusted proxies (the default): every request is the loopback peer's, whatever it claims.
    def request(fake: str) -> bytes:
        return (b"POST " + CALLBACK.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"X-Forwarded-For: " + fake.encode() + b"\r\nContent-Length: 2\r\n\r\n{}")
    statuses = [status_of(await exchange(srv.app.http_port, request(f"198.51.100.{i}")))
                for i in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]


async def test_behind_a_trusted_proxy_each_client_has_its_own_bucket(
        pki: TestPki, tmp_path: Path, sqlite_db: Database) -> None:
    extra = {**LIMITS, "server": {"trusted_proxies": ["127.0.0.0/8"]}}
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False),
                              plaintext=True, extra=extra) as srv:
        def request(client: str) -> bytes:
            return (b"POST " + CALLBACK.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\nX-Forwarded-For: " + client.encode()
                    + b"\r\nContent-Length: 2\r\n\r\n{}")
        first = [status_of(await exchange(srv.app.http_port, request("198.51.100.1")))
                 for _ in range(4)]
        other = status_of(await exchange(srv.app.http_port, request("198.51.100.2")))
        assert first == [200, 200, 200, 429] and other == 200


def test_client_address_resolution() -> None:
    none = TrustedProxies()
    balancer = TrustedProxies(["10.0.0.0/8", "2001:db8::/32"])
    xff = [(b"x-forwarded-for", b"203.0.113.9, 10.1.1.1")]
    assert resolve_client_address("127.0.0.1", xff, none) == "127.0.0.1"
    assert resolve_client_address("198.51.100.7", xff, balancer) == "198.51.100.7"
    assert resolve_client_address("10.0.0.2", xff, balancer) == "203.0.113.9"
    # A client that writes its own X-Forwarded-For gets its address appended by our proxy:
    # the forged entry on the left is ignored.
    forged = [(b"x-forwarded-for", b"1.2.3.4, 203.0.113.9")]
    assert resolve_client_address("10.0.0.2", forged, balancer) == "203.0.113.9"
    assert resolve_client_address("10.0.0.2", [(b"x-forwarded-for", b"junk")], balancer) \
        == "10.0.0.2"
    assert resolve_client_address("10.0.0.2", [(b"x-forwarded-for", b"[2001:db9::1]:443")],
                                  balancer) == "2001:db9::1"
    assert resolve_client_address("10.0.0.2", [], balancer) == "10.0.0.2"
    with pytest.raises(ValueError):
        TrustedProxies(["not-a-network"])


def test_rate_limiter_buckets_refill_and_ipv6_hosts_share_their_64() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 2, clock=lambda: now[0])
    assert [limiter.take("192.0.2.1") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("192.0.2.1") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.take("192.0.2.1") == 0.0
    assert limiter.take("2001:db8::1") == 0.0 and limiter.take("2001:db8::2") == 0.0
    assert limiter.take("2001:db8::3") > 0


def test_every_unauthenticated_route_class_is_recognised() -> None:
    assert route_class("/payments/platform/callback") == "callback"
    assert route_class("/payments/gateway/ipn") == "callback"
    assert route_class("/payments/receipts/verify") == "receipt_lookup"
    assert route_class("/pki/ocsp") == "ocsp" and route_class("/pki/ocsp/MEUw") == "ocsp"
    assert route_class("/pki/tsa") == "tsa"
    assert route_class("/id/login") == "login" and route_class("/id/login/otp") == "login"
    assert route_class("/id/token") == "protocol"


# ------------------------------------------------------------------ gRPC
def raw_call(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(method, request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)


def reason_of(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info.reason


async def audit_outcomes(srv: RunningServer, method: str) -> list[tuple[str, str]]:
    admin = admin_pb2_grpc.AdminServiceStub(srv.plaintext_channel())
    events = (await admin.ListAuditEvents(admin_pb2.ListAuditEventsRequest(
        filter=f'action = "{method}"'))).audit_events
    return [(e.outcome, e.reason) for e in events]


async def test_a_malformed_message_is_invalid_argument_and_audited(srv: RunningServer) -> None:
    method = "/vnegov.admin.v1.AdminService/ListAuditEvents"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await raw_call(srv.plaintext_channel(), method)(b"\xff\xff\xff\xff")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(err.value) == "MALFORMED_MESSAGE"
    assert "Error" not in (err.value.details() or "")  # no Python exception name
    assert ("INVALID_ARGUMENT", "MALFORMED_MESSAGE") in await audit_outcomes(srv, method)


async def test_a_message_over_the_method_limit_is_refused_before_parsing(
        srv: RunningServer) -> None:
    method = "/vnegov.admin.v1.AdminService/ListAuditEvents"
    # A valid ListAuditEventsRequest whose filter is 2 MiB: over the default class's 1 MiB.
    big = admin_pb2.ListAuditEventsRequest(filter="a" * (2 << 20)).SerializeToString()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await raw_call(srv.plaintext_channel(), method)(big)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(err.value) == "MESSAGE_TOO_LARGE"
    assert ("INVALID_ARGUMENT", "MESSAGE_TOO_LARGE") in await audit_outcomes(srv, method)
    # Over the largest class's limit grpcio itself refuses the bytes, without buffering more.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await raw_call(srv.plaintext_channel(), method)(b"\x1a" + b"\xff" * 4 + b"a" * (17 << 20))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def _h2_connect(port: int) -> tuple[socket.socket, h2.connection.H2Connection]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def _h2_events(sock: socket.socket, conn: h2.connection.H2Connection) -> list[Any]:
    data = sock.recv(65536)
    if not data:
        return [None]
    events = conn.receive_data(data)
    try:
        sock.sendall(conn.data_to_send())
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed after what it sent; what it sent is still in `events`
    return list(events)


async def test_grpc_advertises_its_stream_limit_and_enforces_keepalive(
        srv: RunningServer) -> None:
    def probe() -> tuple[int | None, int | None]:
        sock, conn = _h2_connect(srv.app.grpc_port)
        streams = None
        try:
            for _ in range(20):
                for event in _h2_events(sock, conn):
                    if isinstance(event, h2.events.RemoteSettingsChanged):
                        changed = event.changed_settings.get(
                            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
                        if changed is not None:
                            streams = changed.new_value
                if streams is not None:
                    break
            # Ping flood with no call in flight: the server answers with GOAWAY
            # ENHANCE_YOUR_CALM (too_many_pings) and closes the connection.
            # One ping at a time, reading what came back before the next: once the server has
            # sent its GOAWAY and closed, a further write would fail (EPIPE) or reset the
            # connection and discard the GOAWAY still unread in the socket.
            sock.settimeout(0.5)
            for i in range(10):
                conn.ping(b"%08d" % i)
                try:
                    sock.sendall(conn.data_to_send())
                except (BrokenPipeError, ConnectionResetError):
                    return streams, None
                for _ in range(5):
                    try:
                        events = _h2_events(sock, conn)
                    except TimeoutError:
                        break
                    except (BrokenPipeError, ConnectionResetError):
                        return streams, None
                    for event in events:
                        if event is None:
                            return streams, None
                        if isinstance(event, h2.events.ConnectionTerminated):
                            return streams, int(event.error_code)
            return streams, None
        finally:
            sock.close()

    streams, goaway = await asyncio.to_thread(probe)
    assert streams == 256
    assert goaway == 0xB  # ENHANCE_YOUR_CALM


# ------------------------------------------------------------------ query parameters
async def test_an_out_of_range_receipt_number_is_400_not_500(srv: RunningServer) -> None:
    answer = await exchange(srv.app.http_port, b"GET /payments/receipts/verify?k=EBL01&s=25T"
                            b"&n=99999999999999999999999 HTTP/1.1\r\nHost: x\r\n"
                            b"Connection: close\r\n\r\n")
    assert status_of(answer) == 400 and b"parameter n:" in answer
    answer = await exchange(srv.app.http_port, b"GET /payments/receipts/verify?k=EBL01&s=25T"
                            b"&n=1&n=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 400
    many = b"&".join(b"p%d=1" % i for i in range(40))
    answer = await exchange(srv.app.http_port, b"GET /healthz?" + many
                            + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 400
    answer = await exchange(srv.app.http_port, b"GET /payments/receipts/verify?k=EBL01&s=25T"
                            b"&n=0000001&h=" + b"0" * 64
                            + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 404  # well formed, no such receipt


async def test_joined_writes_keep_their_order_and_reach_the_socket_before_it_closes() -> None:
    """The transport wrapper's joining, alone: writes of one turn leave once and in order, a
    1 MiB body included; close() sends what is pending before shutting the sending side;
    abort() drops it."""
    from server.http.protocol import _LingeringTransport

    class Recording:
        def __init__(self) -> None:
            self.calls: list[tuple[str, bytes]] = []
            self.closing = False

        def write(self, data: bytes) -> None:
            self.calls.append(("write", bytes(data)))

        def is_closing(self) -> bool:
            return self.closing

        def can_write_eof(self) -> bool:
            return True

        def write_eof(self) -> None:
            self.calls.append(("eof", b""))

        def resume_reading(self) -> None:
            pass

        def close(self) -> None:
            self.closing = True

        def abort(self) -> None:
            self.calls.append(("abort", b""))
            self.closing = True

        def get_write_buffer_size(self) -> int:
            return 0

    class Protocol:
        loop = asyncio.get_running_loop()
        _refused = False

    body = bytes(range(256)) * 4096  # 1 MiB
    real = Recording()
    transport = _LingeringTransport(real, Protocol())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(bytearray(body))
    assert real.calls == [] and transport.get_write_buffer_size() == len(body) + 19
    await asyncio.sleep(0)
    assert real.calls == [("write", b"HTTP/1.1 200 OK\r\n\r\n" + body)]

    real.calls.clear()
    transport.write(b"last")
    transport.close()  # before the loop's turn ends: the pending bytes go first
    assert real.calls == [("write", b"last"), ("eof", b"")]
    await asyncio.sleep(0)
    assert real.calls == [("write", b"last"), ("eof", b"")]  # nothing sent twice

    real = Recording()
    transport = _LingeringTransport(real, Protocol())  # type: ignore[arg-type]
    transport.write(b"never")
    transport.abort()
    await asyncio.sleep(0)
    assert real.calls == [("abort", b"")]
