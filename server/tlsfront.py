"""The mutual-TLS front of the gRPC port.

grpcio's server credentials either do not ask for a client certificate or reject a missing, expired
or foreign one during the handshake, before any application code runs: the caller sees a dropped
connection (UNAVAILABLE) and nothing can be audited. This front terminates TLS itself (pyOpenSSL),
asks for a client certificate and accepts whatever the client proves it holds the key for, then
relays the decrypted HTTP/2 stream to the gRPC server over a private Unix socket. Each relayed
connection binds its socket to an unguessable abstract name that the gRPC server reports as the
call's peer; :class:`PeerRegistry` maps that name to the certificate chain, and the authentication
interceptor verifies it and answers UNAUTHENTICATED (audited) when it does not verify.

The Unix socket lives in a directory only the server's user can enter, so no other local user can
reach the gRPC server without going through the front.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from OpenSSL import SSL

from server.http.client import TrustedProxies

__all__ = [
    "PeerConnection",
    "PeerRegistry",
    "ProxyHeaderError",
    "TlsFront",
    "make_server_context",
    "parse_proxy_v2",
]

log = logging.getLogger(__name__)

_READ_CHUNK = 256 * 1024
HANDSHAKE_TIMEOUT = 10.0

# Mozilla's "intermediate" server profile (version 5.7): TLS 1.3, and TLS 1.2 with forward-secret
# AEAD suites only (no CBC, no RSA key exchange, no SHA-1 MACs). The DHE suites of the profile
# are left out: no finite-field DH parameters are configured, so they could never be chosen.
# TLS 1.3 suites are OpenSSL's defaults (AES-GCM and ChaCha20-Poly1305), all AEAD.
TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
])


@dataclass(slots=True)
class PeerConnection:
    """A client connection as the front saw it. ``auth_cache`` belongs to the auth layer; a
    connection that stands for one call of a longer-lived one (a certificate forwarded by the
    balancer, :mod:`server.auth.forwarded`) keeps its cache in ``owner``."""

    leaf: x509.Certificate | None
    chain: Sequence[x509.Certificate]
    remote: str
    auth_cache: Any = field(default=None)
    owner: PeerConnection | None = field(default=None)


class PeerRegistry:
    """Peer name (as grpc reports it: ``unix-abstract:<name>``) -> the connection's TLS facts."""

    def __init__(self) -> None:
        self._peers: dict[str, PeerConnection] = {}

    def add(self, name: str, peer: PeerConnection) -> None:
        self._peers["unix-abstract:" + name] = peer

    def remove(self, name: str) -> None:
        self._peers.pop("unix-abstract:" + name, None)

    def get(self, grpc_peer: str) -> PeerConnection | None:
        return self._peers.get(grpc_peer)

    def __len__(self) -> int:
        return len(self._peers)


def make_server_context(
    chain: Sequence[x509.Certificate],
    key: PrivateKeyTypes,
    client_ca_names: Sequence[x509.Certificate],
) -> SSL.Context:
    """A server context with Mozilla's intermediate profile (:data:`TLS12_CIPHERS`, TLS 1.2 and
    1.3) that requests (but does not itself judge) a client certificate."""
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_cipher_list(TLS12_CIPHERS.encode())
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    ctx.use_certificate(chain[0])
    for extra in chain[1:]:
        ctx.add_extra_chain_cert(extra)
    ctx.use_privatekey(key)  # type: ignore[arg-type]
    ctx.check_privatekey()
    # Accept any chain here: the handshake still proves possession of the client key
    # (CertificateVerify); trust is decided by the interceptor so failures can be answered.
    ctx.set_verify(SSL.VERIFY_PEER, lambda conn, cert, errno, depth, ok: True)
    for ca in client_ca_names:  # the CertificateRequest names them, so clients pick the right one
        ctx.add_client_ca(ca)
    ctx.set_alpn_select_callback(_select_h2)
    ctx.set_session_id(b"vnegov-grpc")
    return ctx


PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_PROXY_V2_MAX = 16 + 536  # the header and the largest address block HAProxy sends (with TLVs)


class ProxyHeaderError(ValueError):
    """A connection that had to start with a PROXY v2 header did not."""


def parse_proxy_v2(data: bytes) -> tuple[int, str | None] | None:
    """Parse a PROXY protocol v2 header at the start of ``data``.

    Returns ``None`` while more bytes are needed, else ``(header length, client address)``; the
    address is ``"ip:port"``, or ``None`` for a LOCAL command (the balancer's own health check) or
    an address family other than TCP over IPv4/IPv6. Raises :class:`ProxyHeaderError` when the
    bytes are not a PROXY v2 header."""
    if len(data) < 16:
        if not PROXY_V2_SIGNATURE.startswith(data[:12]):
            raise ProxyHeaderError("not a PROXY v2 header")
        return None
    if data[:12] != PROXY_V2_SIGNATURE:
        raise ProxyHeaderError("not a PROXY v2 header")
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2 or command not in (0, 1):
        raise ProxyHeaderError("unsupported PROXY protocol version or command")
    family = data[13]
    length = int.from_bytes(data[14:16], "big")
    if 16 + length > _PROXY_V2_MAX:
        raise ProxyHeaderError("PROXY v2 header too long")
    if len(data) < 16 + length:
        return None
    body = data[16:16 + length]
    if command == 0:  # LOCAL
        return 16 + length, None
    if family == 0x11 and length >= 12:  # TCP over IPv4
        ip = str(ipaddress.IPv4Address(body[0:4]))
        return 16 + length, f"{ip}:{int.from_bytes(body[8:10], 'big')}"
    if family == 0x21 and length >= 36:  # TCP over IPv6
        ip = str(ipaddress.IPv6Address(body[0:16]))
        return 16 + length, f"[{ip}]:{int.from_bytes(body[32:34], 'big')}"
    if family in (0x11, 0x21):
        raise ProxyHeaderError("PROXY v2 address block too short")
    return 16 + length, None


def _select_h2(_conn: SSL.Connection, protocols: list[bytes]) -> bytes:
    return b"h2" if b"h2" in protocols else SSL.NO_OVERLAPPING_PROTOCOLS  # type: ignore[return-value]


class _Upstream(asyncio.Protocol):
    def __init__(self, front: _FrontConnection) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not subclasses of asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.front.send_plain(data)

    def eof_received(self) -> bool:
        self.front.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.close()

    def pause_writing(self) -> None:
        self.front.pause_reading()

    def resume_writing(self) -> None:
        self.front.resume_reading()


class _FrontConnection(asyncio.Protocol):
    def __init__(self, front: TlsFront) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.tls = SSL.Connection(front.context, None)
        self.tls.set_accept_state()
        self.handshaken = False
        self.pending: list[bytes] = []
        self.upstream: _Upstream | None = None
        self.name = ""
        self.closed = False
        self.remote = ""
        self._timeout: asyncio.TimerHandle | None = None
        # Bytes of a PROXY v2 header still being read (None: no header expected, or read).
        self._proxy: bytearray | None = None

    # client side -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not subclasses of asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        self.remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        if isinstance(peer, tuple) and self.front.proxy_from.trusts(str(peer[0])):
            self._proxy = bytearray()
        self.front.connections.add(self)
        self._timeout = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT, self._expire)

    def _expire(self) -> None:
        if not self.handshaken:
            log.info("tls handshake timed out", extra={"remote": self.remote})
            self.close()

    def _proxy_header(self, data: bytes) -> bytes | None:
        """Consume the PROXY v2 header; the bytes after it, or None while it is incomplete (or
        the connection was closed because it is not one)."""
        assert self._proxy is not None
        self._proxy += data
        try:
            parsed = parse_proxy_v2(bytes(self._proxy[:_PROXY_V2_MAX]))
        except (ProxyHeaderError, ValueError) as exc:
            log.info("connection from a PROXY protocol peer without a valid header",
                     extra={"remote": self.remote, "error": str(exc)})
            self.close()
            return None
        if parsed is None:
            if len(self._proxy) >= _PROXY_V2_MAX:
                self.close()
            return None
        length, client = parsed
        if client is not None:
            self.remote = client
        rest = bytes(self._proxy[length:])
        self._proxy = None
        return rest

    def data_received(self, data: bytes) -> None:
        if self._proxy is not None:
            rest = self._proxy_header(data)
            if not rest:
                return
            data = rest
        self.tls.bio_write(data)
        if not self.handshaken:
            try:
                self.tls.do_handshake()
            except SSL.WantReadError:
                self._flush()
                return
            except SSL.Error as exc:
                self._flush()
                log.info("tls handshake failed", extra={"remote": self.remote,
                                                        "error": _ssl_reason(exc)})
                self.close()
                return
            self.handshaken = True
            if self._timeout is not None:
                self._timeout.cancel()
            self._flush()
            self._start_upstream()
        plain: list[bytes] = []
        while True:
            try:
                plain.append(self.tls.recv(_READ_CHUNK))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self.close()
                break
            except SSL.Error as exc:
                log.info("tls error", extra={"remote": self.remote, "error": _ssl_reason(exc)})
                self.close()
                return
        self._flush()
        if plain:
            self._forward(b"".join(plain))

    def _forward(self, data: bytes) -> None:
        """Relay plaintext to the gRPC server, in order: until :meth:`_connected` has written
        what arrived while the upstream was connecting, new data queues behind it (the upstream
        is set a moment before that callback runs)."""
        if self.upstream is not None and self.upstream.transport is not None and not self.pending:
            self.upstream.transport.write(data)
        else:
            self.pending.append(data)

    def _flush(self) -> None:
        out: list[bytes] = []
        while True:
            try:
                out.append(self.tls.bio_read(_READ_CHUNK))
            except SSL.WantReadError:
                break
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def _start_upstream(self) -> None:
        leaf = self.tls.get_peer_certificate(as_cryptography=True)
        chain = self.tls.get_peer_cert_chain(as_cryptography=True) or []
        self.name = "vnegov-" + secrets.token_hex(16)
        self.front.registry.add(self.name, PeerConnection(leaf, chain, self.remote))
        task = asyncio.ensure_future(self._connect())
        task.add_done_callback(self._connected)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind("\0" + self.name)
            sock.setblocking(False)
            await loop.sock_connect(sock, self.front.inner_path)
            _, self.upstream = await loop.create_unix_connection(lambda: _Upstream(self),
                                                                 sock=sock)
        except BaseException:
            sock.close()
            raise

    def _connected(self, task: asyncio.Future[None]) -> None:
        if task.cancelled() or task.exception() is not None:
            log.error("cannot reach the gRPC server behind the TLS front")
            self.close()
            return
        if self.closed:
            self.close()
            return
        if self.pending and self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(b"".join(self.pending))
            self.pending.clear()

    # upstream side -----------------------------------------------------------------------
    def send_plain(self, data: bytes) -> None:
        if self.closed:
            return
        view = memoryview(data)
        while view:
            sent = self.tls.send(view[:_READ_CHUNK])
            view = view[sent:]
            self._flush()

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timeout is not None:
            self._timeout.cancel()
        if self.handshaken:
            try:
                self.tls.shutdown()
                self._flush()
            except SSL.Error:
                pass
        if self.transport is not None:
            self.transport.close()
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()
        if self.name:
            self.front.registry.remove(self.name)
        self.front.connections.discard(self)


def _ssl_reason(exc: SSL.Error) -> str:
    try:
        return str(exc.args[0][0][2])[:100]
    except (IndexError, TypeError):
        return type(exc).__name__


class TlsFront:
    """Listens on the public gRPC address and relays to the gRPC server's private socket."""

    def __init__(self, context: SSL.Context, inner_path: str, registry: PeerRegistry, *,
                 proxy_from: TrustedProxies | None = None) -> None:
        self.context = context
        # Peers whose connections begin with a PROXY v2 header (balancers passing TLS through).
        self.proxy_from = proxy_from or TrustedProxies()
        self.inner_path = inner_path
        self.registry = registry
        self.connections: set[_FrontConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Listen; with ``reuse_port`` other worker processes listen on the same port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _FrontConnection(self), host, port,
                                                reuse_address=True, reuse_port=reuse_port,
                                                backlog=1024)
        return int(self._server.sockets[0].getsockname()[1])

    def stop_accepting(self) -> None:
        """Refuse new connections; connections already open keep working."""
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        self.stop_accepting()
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
