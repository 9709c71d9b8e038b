"""Ports to the outside: payment channels, as the mop-up worker and the server see them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

__all__ = ["ChannelStatus", "PaymentChannel", "StatusQuery"]


class ChannelStatus(StrEnum):
    """What a payment channel answers when asked about a payment."""
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class StatusQuery:
    """A channel's answer about one payment."""

    status: ChannelStatus
    amount: int = 0
    channel_transaction_id: str = ""
    at: dt.datetime | None = None


class PaymentChannel(Protocol):
    """What the server needs from a channel: its name, and a status query for the mop-up worker
    (payments still pending after a while are asked about rather than trusted to a callback)."""

    name: str

    def query_status(self, reference: str, *, now: dt.datetime) -> StatusQuery: ...
