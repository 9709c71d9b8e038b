"""The CA's HTTP endpoints, mounted at ``/pki`` as one raw ASGI application (OCSP is a hot path:
no framework request objects, cached answers go out without leaving the event loop).

=====================================  ======================================================
``GET /pki/crl/<ca>.crl``              newest full CRL (DER, ``application/pkix-crl``)
``GET /pki/crl/<ca>-delta.crl``        newest delta CRL
``GET /pki/crl/root-ca.crl``           the root's CRL
``GET /pki/certs/<ca>.cer``            a CA certificate (DER, ``application/pkix-cert``)
``GET /pki/certs/chain.pem``           issuing CA and root, PEM
``POST /pki/ocsp``                     RFC 6960 (``application/ocsp-request``)
``GET /pki/ocsp/<base64 request>``     RFC 6960 appendix A.1 / RFC 5019 (cacheable)
``POST /pki/tsa``                      RFC 3161 (``application/timestamp-query``)
=====================================  ======================================================
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import hashlib
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from prometheus_client import Counter
from starlette.types import Receive, Scope, Send

from server.ca.publishing import CrlPublisher
from server.ca.runtime import CaRuntime
from signing.ca.ocsp import OcspAnswer, OcspResponseStatus, error_response

__all__ = ["PkiHttp"]

MAX_BODY = 16 * 1024
Runner = Callable[..., Awaitable[Any]]


def _http_date(value: dt.datetime) -> bytes:
    return email.utils.format_datetime(value.astimezone(dt.UTC), usegmt=True).encode()


class PkiHttp:
    def __init__(self, runtime: CaRuntime, publisher: CrlPublisher, *,
                 clock: Callable[[], dt.datetime], run: Runner, ocsp_counter: Counter,
                 inline_signing: bool) -> None:
        self.rt = runtime
        self.publisher = publisher
        self.clock = clock
        self.run = run
        self.counter = ocsp_counter
        self._cache_hits = ocsp_counter.labels("cache")
        # GET path -> (request DER, the cached answer, its HTTP headers): a repeated GET skips
        # decoding and header formatting while the cache still holds the same answer.
        self._hot: dict[str, tuple[bytes, OcspAnswer, tuple[tuple[bytes, bytes], ...]]] = {}
        self.inline = inline_signing  # file keys sign on the loop; token keys in a thread
        issuing = runtime.authority.certificate
        self.certs = {
            f"{runtime.authority.name}.cer": issuing.public_bytes(serialization.Encoding.DER),
            f"{runtime.root_name}.cer": runtime.root.public_bytes(serialization.Encoding.DER),
        }
        self.chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM)
                                  for c in (issuing, runtime.root) if c is not None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        path = path.removeprefix("/pki")
        method = scope["method"]
        if path == "/ocsp" and method == "POST":
            await self._ocsp_post(scope, receive, send)
        elif path.startswith("/ocsp/") and method == "GET":
            await self._ocsp_get(scope, path[len("/ocsp/"):], send)
        elif path == "/tsa" and method == "POST":
            await self._tsa(scope, receive, send)
        elif path.startswith("/crl/") and method in ("GET", "HEAD"):
            await self._crl(path[len("/crl/"):], method, send)
        elif path.startswith("/certs/") and method in ("GET", "HEAD"):
            await self._cert(path[len("/certs/"):], method, send)
        elif path in ("/ocsp", "/tsa") or path.startswith(("/ocsp/", "/crl/", "/certs/")):
            await _send(send, 405, b"method not allowed\n", b"text/plain")
        else:
            await _send(send, 404, b"not found\n", b"text/plain")

    # ------------------------------------------------------------------ OCSP
    async def _ocsp_post(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _body(receive, MAX_BODY)
        if body is None:
            await _send(send, 413, b"request too large\n", b"text/plain")
            return
        await self._ocsp(body, send, cacheable_http=False)

    async def _ocsp_get(self, scope: Scope, encoded: str, send: Send) -> None:
        hot = self._hot.get(encoded)
        if hot is not None:
            der, answer, headers = hot
            if self.rt.cache.get(der, self.clock()) is answer:
                self._cache_hits.inc()
                await _send(send, 200, answer.body, b"application/ocsp-response", headers)
                return
            del self._hot[encoded]
        raw = urllib.parse.unquote(encoded)
        try:
            der = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            self.counter.labels("malformed").inc()
            await _send(send, 200, error_response(OcspResponseStatus.MALFORMED_REQUEST),
                        b"application/ocsp-response")
            return
        await self._ocsp(der, send, cacheable_http=True, path=encoded)

    async def _ocsp(self, der: bytes, send: Send, *, cacheable_http: bool,
                    path: str = "") -> None:
        responder = self.rt.responder
        if responder is None:
            await _send(send, 503, b"no OCSP responder is configured\n", b"text/plain")
            return
        now = self.clock()
        cached = self.rt.cache.get(der, now)
        if cached is not None:
            self._cache_hits.inc()
            headers: tuple[tuple[bytes, bytes], ...] = ()
            if cacheable_http:
                headers = self._cache_headers(cached)
                self._remember(path, der, cached, headers)
            await _send(send, 200, cached.body, b"application/ocsp-response", headers)
            return
        epoch = self.rt.cache.epoch
        if self.inline:
            answer = responder.respond(der, now)
        else:
            answer = await self.run(responder.respond, der, now)
        self.counter.labels(_label(answer)).inc()
        headers = ()
        if self.rt.cache.put(der, answer, epoch) and cacheable_http:
            headers = self._cache_headers(answer)
            self._remember(path, der, answer, headers)
        await _send(send, 200, answer.body, b"application/ocsp-response", headers)

    def _remember(self, path: str, der: bytes, answer: OcspAnswer,
                  headers: tuple[tuple[bytes, bytes], ...]) -> None:
        if not path:
            return
        if len(self._hot) >= 10_000:
            self._hot.clear()
        self._hot[path] = (der, answer, headers)

    def _cache_headers(self, entry: OcspAnswer) -> tuple[tuple[bytes, bytes], ...]:
        if entry.produced_at is None or entry.next_update is None:
            return ((b"cache-control", b"no-cache"),)
        # Fresh until the cache would replace it (half-way to nextUpdate); a shared HTTP cache
        # may keep it that long, and Expires bounds it absolutely.
        max_age = int((entry.next_update - entry.produced_at).total_seconds() / 2)
        return (
            (b"cache-control", f"max-age={max_age}, public, no-transform, must-revalidate"
             .encode()),
            (b"last-modified", _http_date(entry.produced_at)),
            (b"expires", _http_date(entry.next_update)),
            (b"etag", b'"' + hashlib.sha1(entry.body).hexdigest().encode() + b'"'),
        )

    # ------------------------------------------------------------------ TSA
    async def _tsa(self, scope: Scope, receive: Receive, send: Send) -> None:
        tsa = self.rt.tsa
        if tsa is None:
            await _send(send, 503, b"no time-stamping unit is configured\n", b"text/plain")
            return
        body = await _body(receive, MAX_BODY)
        if body is None:
            await _send(send, 413, b"request too large\n", b"text/plain")
            return
        answer = await self.run(tsa.respond, body, self.clock())
        await _send(send, 200, answer.body, b"application/timestamp-reply")

    # ------------------------------------------------------------------ CRLs, certificates
    async def _crl(self, name: str, method: str, send: Send) -> None:
        crl = self.publisher.crls.get(name.removesuffix(".crl")) if name.endswith(".crl") \
            else None
        if crl is None:
            await _send(send, 404, b"no such CRL\n", b"text/plain")
            return
        headers = ((b"last-modified", _http_date(crl.this_update)),
                   (b"expires", _http_date(crl.next_update)),
                   (b"cache-control", b"max-age=60, public, no-transform"))
        await _send(send, 200, b"" if method == "HEAD" else crl.der, b"application/pkix-crl",
                    headers, length=len(crl.der))

    async def _cert(self, name: str, method: str, send: Send) -> None:
        if name == "chain.pem":
            data, kind = self.chain_pem, b"application/x-pem-file"
        else:
            found = self.certs.get(name)
            if found is None:
                await _send(send, 404, b"no such certificate\n", b"text/plain")
                return
            data, kind = found, b"application/pkix-cert"
        await _send(send, 200, b"" if method == "HEAD" else data, kind,
                    ((b"cache-control", b"max-age=86400, public"),), length=len(data))


def _label(answer: OcspAnswer) -> str:
    if answer.status is OcspResponseStatus.SUCCESSFUL:
        return "signed"
    return answer.status.name.lower()


async def _body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, status: int, body: bytes, content_type: bytes,
                headers: tuple[tuple[bytes, bytes], ...] = (), *, length: int | None = None
                ) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type),
        (b"content-length", str(len(body) if length is None else length).encode()),
        *headers]})
    await send({"type": "http.response.body", "body": body})
