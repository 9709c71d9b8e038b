"""Certificate requests: what was asked, their states, and the working-day service target.

Every operation on a subscriber's certificate is a request with a state::

    SUBMITTED ──approve──> APPROVED ──complete──> COMPLETED
        │                     │
        └──────reject─────────┴──────reject──────> REJECTED

Requests record when they entered each state, so the time from submission to completion can be
reported in working days (Decree 68/2024: new issuance within 3 working days of a valid dossier).
Working days are counted in Asia/Ho_Chi_Minh: Monday to Friday, minus the public holidays the
deployment configures (Tết and the other holidays move every year, so they are data, not code).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from signing.errors import FailedPrecondition

__all__ = [
    "VIETNAM",
    "InvalidTransition",
    "RequestKind",
    "RequestState",
    "Timeline",
    "check_transition",
    "working_days_between",
]

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


class RequestKind(StrEnum):
    """What a certificate request asks for."""
    ISSUE = "issue"
    RENEW = "renew"
    REKEY = "rekey"
    MODIFY = "modify"
    REVOKE = "revoke"
    HOLD = "hold"
    RELEASE = "release"


class RequestState(StrEnum):
    """Where a certificate request is in its review."""
    SUBMITTED = "submitted"
    APPROVED = "approved"
    COMPLETED = "completed"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        return self in (RequestState.COMPLETED, RequestState.REJECTED)


_TRANSITIONS = {
    RequestState.SUBMITTED: {RequestState.APPROVED, RequestState.REJECTED},
    RequestState.APPROVED: {RequestState.COMPLETED, RequestState.REJECTED},
    RequestState.COMPLETED: set(),
    RequestState.REJECTED: set(),
}


class InvalidTransition(FailedPrecondition):
    reason = "INVALID_REQUEST_STATE"


def check_transition(current: RequestState, target: RequestState) -> None:
    if target not in _TRANSITIONS[current]:
        raise InvalidTransition(f"a {current.value} request cannot become {target.value}",
                                metadata={"state": current.value})


def working_days_between(start: dt.datetime, end: dt.datetime,
                         holidays: Collection[dt.date] = ()) -> float:
    """Working time from ``start`` to ``end`` in working days (fractions count), local to Vietnam.

    Each working day counts fully from midnight to midnight; weekends and ``holidays`` count zero.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    if end <= start:
        return 0.0
    a, b = start.astimezone(VIETNAM), end.astimezone(VIETNAM)
    total = 0.0
    day = a.date()
    while day <= b.date():
        if day.weekday() < 5 and day not in holidays:
            lo = max(a, dt.datetime.combine(day, dt.time(), VIETNAM))
            hi = min(b, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), VIETNAM))
            total += max(0.0, (hi - lo).total_seconds()) / 86400
        day += dt.timedelta(days=1)
    return total


@dataclass(frozen=True, slots=True)
class Timeline:
    """When a request was submitted, approved, completed or rejected (for the service-time targets)."""
    submitted_at: dt.datetime
    approved_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    rejected_at: dt.datetime | None = None

    def working_days(self, holidays: Collection[dt.date] = (),
                     now: dt.datetime | None = None) -> float | None:
        """Working days from submission to completion or rejection (or to ``now`` if open)."""
        end = self.completed_at or self.rejected_at or now
        if end is None:
            return None
        return working_days_between(self.submitted_at, end, holidays)

    def within_target(self, target_days: float, holidays: Collection[dt.date] = (),
                      now: dt.datetime | None = None) -> bool | None:
        days = self.working_days(holidays, now)
        return None if days is None else days <= target_days
