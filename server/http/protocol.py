"""uvicorn's httptools protocol with limits on what a client may send before the application runs.

uvicorn bounds neither the request head (llhttp and httptools accumulate a header of any size: a
16 MiB header is read whole) nor the time a client may take to send it (a connection that sends
one byte a minute is kept forever). This protocol counts the bytes of each request head as they
are fed to the parser and answers, then closes the connection:

- **431** when the head (request line and headers) exceeds ``max_head_bytes``, or the request has
  more than ``max_headers`` header fields;
- **414** when the request target exceeds ``max_url_bytes``;
- **408** when the head is not complete ``head_timeout`` seconds after the connection opened or
  the previous response ended (idle keep-alive connections still close after uvicorn's
  ``timeout_keep_alive``).

Body limits are per route and live in :mod:`server.http.limits`.

Every close the protocol makes (after these refusals, and uvicorn's own after a response with
``connection: close``) is a *lingering close*: the answer is sent, the sending side shut down, and
whatever the client still sends is read and discarded for up to ``LINGER_SECONDS`` before the
socket closes. Closing at once with unread data makes the kernel reset the connection, and a
client still uploading an oversized body would lose the 413 that explains why.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeadLimits", "limited_protocol"]

LINGER_SECONDS = 2.0
_REASONS = {408: b"Request Timeout", 414: b"URI Too Long",
            431: b"Request Header Fields Too Large"}


@dataclass(frozen=True, slots=True)
class HeadLimits:
    max_head_bytes: int = 16 * 1024
    max_headers: int = 64
    max_url_bytes: int = 8 * 1024
    head_timeout: float = 10.0


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _LingeringTransport:
    """The connection's transport as uvicorn sees it: ``close()`` lingers (see the module's
    docstring); writes made in one turn of the event loop leave in one ``send`` (uvicorn writes a
    response's head and its body separately: two system calls and two TCP segments for every
    small response otherwise); everything else goes to the real transport."""

    def __init__(self, transport: asyncio.Transport, protocol: LimitedHttpToolsProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closing = False
        self._pending: list[bytes] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending is None:
            self._pending = []
            self._protocol.loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        """Hand what was written in this turn to the real transport (once, joined)."""
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending or ()))

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def close(self) -> None:
        self.flush()
        if self._closing or self._transport.is_closing():
            return
        self._closing = True
        self._protocol._refused = True  # anything still arriving is discarded
        try:
            if self._transport.can_write_eof():
                self._transport.write_eof()
            self._transport.resume_reading()
        except (OSError, RuntimeError):
            self._transport.close()
            return
        self._protocol.loop.call_later(LINGER_SECONDS, self._transport.close)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits = HeadLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._refused = False
        super().connection_made(cast(asyncio.Transport, _LingeringTransport(transport, self)))
        self._head_bytes = 0
        self._header_count = 0
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    # ------------------------------------------------------------------ timers
    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_expired)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def eof_received(self) -> None:
        # The client finished sending: a lingering close need not wait any longer.
        if isinstance(self.transport, _LingeringTransport) and self.transport.is_closing():
            self.transport._transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._in_head:
            self._arm_head_timer()

    # ------------------------------------------------------------------ parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._header_count = 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_url_bytes:
            raise _Refused(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            raise _Refused(431)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._disarm_head_timer()
        super().on_headers_complete()

    # ------------------------------------------------------------------ input
    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._in_head:
            super().data_received(data)
            return
        # Feed the head only up to the limit: the parser never holds more of it than that.
        view = memoryview(data)
        while view and not self._refused:
            if self._in_head:
                room = self.limits.max_head_bytes - self._head_bytes
                if room <= 0:
                    self._refuse(431)
                    return
                part, view = view[:room], view[room:]
                self._head_bytes += len(part)
            else:
                part, view = view, view[len(view):]
            try:
                self._unset_keepalive_if_required()
                self.parser.feed_data(bytes(part))
            except httptools.HttpParserUpgrade:  # as uvicorn does
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            except httptools.HttpParserError as exc:
                refused = exc.__context__
                if isinstance(refused, _Refused):
                    self._refuse(refused.status)
                else:
                    self.logger.warning("Invalid HTTP request received.")
                    self.send_400_response("Invalid HTTP request received.")
                    self._refused = True
                return

    def _refuse(self, status: int) -> None:
        self._refused = True
        self._disarm_head_timer()
        message = _REASONS[status] + b"\n"
        self.transport.write(b"".join([
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(message),
            b"connection: close\r\n\r\n", message]))
        self.transport.close()


def limited_protocol(limits: HeadLimits) -> type[Any]:
    """A protocol class for ``uvicorn.Config(http=...)`` enforcing ``limits``."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
