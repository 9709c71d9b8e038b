"""Client certificates forwarded by the balancer (RFC 9440 ``Client-Cert`` / ``Client-Cert-Chain``).

Behind the production front door (deploy/haproxy) the balancer terminates mutual TLS and relays each
call over HTTP/2 to a replica's *balancer listener* (``server.balancer_listen``: a Unix socket only
the balancer's group can open, or an address only the balancer may connect from). On that listener,
and only there, the certificate the client proved it holds the key for arrives in the headers:

- ``client-cert``: one RFC 8941 byte sequence, ``:<base64 of the DER certificate>:``;
- ``client-cert-chain``: a list of byte sequences, ``:<base64 DER>:, :<base64 DER>:``. An item may
  hold several DER certificates one after another (HAProxy's ``ssl_c_chain_der`` gives the chain
  as one concatenation); the leaf, if repeated there, is dropped.

The balancer removes any such header a client sends and sets its own (deploy/haproxy/vnegov.cfg),
so the replica never sees a client's forgery; on every other listener (the embedded TLS front, the
inner socket) the headers are never read. The replica does not take the balancer's word for the
certificate's validity: it builds the path to its own trust anchors, checks the agency's
permissions, expiry and revocation on every call, and audits refusals, exactly as for a connection
on the embedded front (:class:`server.auth.authenticator.Authenticator`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections import OrderedDict
from collections.abc import Mapping

from cryptography import x509

from server.auth.authenticator import Authenticator, BearerAuthenticator
from server.auth.caller import Caller
from server.auth.certificates import ClientCertificateVerifier
from server.errors import NotAuthenticated
from server.http.client import TrustedProxies
from server.tlsfront import PeerConnection, PeerRegistry

__all__ = [
    "ForwardedCertificateAuthenticator",
    "grpc_peer_address",
    "parse_client_cert_chain",
    "split_der",
]

CLIENT_CERT = "client-cert"
CLIENT_CERT_CHAIN = "client-cert-chain"
_MAX_HEADER = 12 * 1024  # a leaf is ~1-2 KiB; a chain of a few certificates stays well under this
_MAX_CHAIN = 8
_CACHE_SIZE = 4096


def _byte_sequence(item: str) -> bytes:
    item = item.strip()
    if len(item) < 2 or item[0] != ":" or item[-1] != ":":
        raise ValueError("not an RFC 8941 byte sequence")
    try:
        return base64.b64decode(item[1:-1], validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


def split_der(data: bytes) -> list[bytes]:
    """DER SEQUENCEs laid end to end, split into one ``bytes`` each (at most ``_MAX_CHAIN``)."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if data[pos] != 0x30 or pos + 2 > len(data):
            raise ValueError("not a DER certificate")
        first = data[pos + 1]
        if first < 0x80:
            header, length = 2, first
        else:
            count = first & 0x7F
            if count == 0 or count > 3 or pos + 2 + count > len(data):
                raise ValueError("bad DER length")
            header = 2 + count
            length = int.from_bytes(data[pos + 2:pos + 2 + count], "big")
        end = pos + header + length
        if end > len(data):
            raise ValueError("truncated DER certificate")
        out.append(data[pos:end])
        pos = end
        if len(out) > _MAX_CHAIN:
            raise ValueError("too many certificates")
    return out


def parse_client_cert_chain(leaf_header: str, chain_header: str
                            ) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The leaf and chain the two headers carry; ``ValueError`` when they are not well formed."""
    if len(leaf_header) > _MAX_HEADER or len(chain_header) > _MAX_HEADER:
        raise ValueError("forwarded certificate headers too large")
    leaf_der = split_der(_byte_sequence(leaf_header))
    if len(leaf_der) != 1:
        raise ValueError("client-cert must hold exactly one certificate")
    leaf = x509.load_der_x509_certificate(leaf_der[0])
    chain = [leaf]
    for item in (i for i in chain_header.split(",") if i.strip()):
        for der in split_der(_byte_sequence(item)):
            if der == leaf_der[0]:
                continue
            chain.append(x509.load_der_x509_certificate(der))
            if len(chain) > _MAX_CHAIN:
                raise ValueError("too many certificates")
    return leaf, chain


class ForwardedCertificateAuthenticator(Authenticator):
    """The authenticator of the balancer listener: the connection's facts come from the headers the
    balancer set. Parsed certificates are kept (least recently used first out) by header value, so
    a client's many calls cost one parse and one path validation; expiry and revocation are checked
    again on every call by :class:`Authenticator`."""

    def __init__(self, verifier: ClientCertificateVerifier, *,
                 bearer: BearerAuthenticator | None = None,
                 peers: TrustedProxies | None = None) -> None:
        super().__init__(registry=PeerRegistry(), verifier=verifier, bearer=bearer)
        self._known: OrderedDict[tuple[str, str], PeerConnection | None] = OrderedDict()
        # On a TCP listener, the balancer's addresses: calls from anywhere else are refused
        # whatever they carry (bearer tokens included). None: a Unix socket, which the file
        # system already restricts to the balancer.
        self._peers = peers

    def _from_balancer(self, peer: str) -> bool:
        return self._peers is None or self._peers.trusts(grpc_peer_address(peer))

    def authenticate(self, peer: str, metadata: Mapping[str, str], now: dt.datetime) -> Caller:
        if not self._from_balancer(peer):
            raise NotAuthenticated("NOT_FROM_BALANCER")
        return super().authenticate(peer, metadata, now)

    def peer_connection(self, peer: str,
                        metadata: Mapping[str, str] | None = None) -> PeerConnection | None:
        if metadata is None or not self._from_balancer(peer):
            return None
        leaf_header = metadata.get(CLIENT_CERT, "")
        if not leaf_header:
            return None
        key = (leaf_header, metadata.get(CLIENT_CERT_CHAIN, ""))
        if key in self._known:
            self._known.move_to_end(key)
            known = self._known[key]
        else:
            try:
                leaf, chain = parse_client_cert_chain(*key)
                known = PeerConnection(leaf, chain, "")
            except ValueError:
                known = None
            self._known[key] = known
            if len(self._known) > _CACHE_SIZE:
                self._known.popitem(last=False)
        if known is None:
            return None
        # One object per call (the client's address differs), sharing the verification cache.
        return PeerConnection(known.leaf, known.chain, _remote(peer, metadata), owner=known)

    def _missing_connection(self, peer: str, metadata: Mapping[str, str]) -> NotAuthenticated:
        if metadata.get(CLIENT_CERT):
            return NotAuthenticated("MALFORMED_FORWARDED_CERTIFICATE")
        return NotAuthenticated("NO_CLIENT_CERTIFICATE")


def grpc_peer_address(peer: str) -> str:
    """The IP address in a gRPC peer string (``ipv4:192.0.2.1:5000``, ``ipv6:[::1]:5000``), or
    ``""`` for anything else (a Unix socket)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        host = rest.rpartition(":")[0]
        return host[1:-1] if host.startswith("[") else host
    return ""


def _remote(peer: str, metadata: Mapping[str, str]) -> str:
    """The client's address as the balancer reported it (the last X-Forwarded-For entry: the one
    the balancer itself appended), else the balancer's own."""
    forwarded = metadata.get("x-forwarded-for", "").split(",")[-1].strip()
    return forwarded or peer
