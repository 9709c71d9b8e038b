"""RFC 3161 time stamps for signatures (B-T and up) and documents (B-LTA), through a transport port.

The library builds and checks requests and responses (via pyHanko); moving the bytes to the
time-stamping authority is the :class:`TimeStampTransport` port's job (the server provides an HTTP
adapter, RFC 3161 §3.4: ``POST`` with ``application/timestamp-query``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from asn1crypto import tsp
from pyhanko.sign.timestamps.api import TimeStamper

from signing.sign.errors import TimestampUnavailable

__all__ = ["PortTimeStamper", "TimeStampTransport"]


@runtime_checkable
class TimeStampTransport(Protocol):
    """Sends a DER ``TimeStampReq`` to a TSA and returns its DER ``TimeStampResp``."""

    def exchange(self, request: bytes) -> bytes:
        ...


class PortTimeStamper(TimeStamper):
    """pyHanko's time stamper, talking to the TSA through a :class:`TimeStampTransport`."""

    def __init__(self, transport: TimeStampTransport) -> None:
        super().__init__(include_nonce=True)  # type: ignore[no-untyped-call]
        self._transport = transport

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        try:
            raw = self._transport.exchange(req.dump())
        except OSError as exc:
            raise TimestampUnavailable("the time-stamping authority did not answer") from exc
        try:
            return tsp.TimeStampResp.load(raw)
        except ValueError as exc:
            raise TimestampUnavailable("the time-stamping authority answered garbage") from exc
