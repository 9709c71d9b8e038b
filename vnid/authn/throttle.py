"""Lockout and back-off after repeated authentication failures (NIST SP 800-63B §5.2.2).

Failures are counted per *key* — one counter per account and one per source address — and each
counter follows the same policy: the first ``free_attempts`` failures cost nothing, then each further
failure blocks the key for a delay that doubles from ``base_delay`` up to ``max_delay``; after
``lockout_after`` consecutive failures the key is locked out for ``lockout``. A success clears the
account's counter; failures older than ``forget_after`` are forgotten.

A source address is shared (a commune kiosk, a carrier's CGNAT address), so its counter is fair to
the people behind it: it counts *distinct accounts* that failed from it (one citizen's typos are the
account counter's business), each account that logs in successfully from it takes
``success_credit`` failures off it, and it applies only to attempts from unknown devices (see
:mod:`vnid.authn.device_cookies`). Password spraying — many accounts, few attempts each, from one
address — still fills it.

A temporary lockout (rather than a permanent one) keeps an attacker who knows someone's ID number
from locking them out for good; an official can still lock an account explicitly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vnid.errors import InvalidInput, RateLimited

__all__ = [
    "ThrottlePolicy",
    "ThrottleState",
    "TooManyAttempts",
]


class TooManyAttempts(RateLimited):
    """Too many failed attempts for this account or source address; ``retry_after`` seconds."""

    reason = "TOO_MANY_ATTEMPTS"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, metadata={"retry_after": str(retry_after)})
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class ThrottleState:
    failures: int = 0
    last_failure_at: dt.datetime | None = None
    blocked_until: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    free_attempts: int = 3
    base_delay: dt.timedelta = dt.timedelta(seconds=2)
    max_delay: dt.timedelta = dt.timedelta(minutes=5)
    lockout_after: int = 10
    lockout: dt.timedelta = dt.timedelta(minutes=30)
    forget_after: dt.timedelta = dt.timedelta(hours=24)
    # Failures taken off the counter by a successful login (source addresses; once per account).
    success_credit: int = 0

    @classmethod
    def from_config(cls, data: Mapping[str, Any], base: ThrottlePolicy | None = None
                    ) -> ThrottlePolicy:
        """A policy from a configuration table; settings it leaves out come from ``base``."""
        fields = {"free_attempts", "base_delay_seconds", "max_delay_seconds", "lockout_after",
                  "lockout_seconds", "forget_after_seconds", "success_credit"}
        unknown = set(data) - fields
        if unknown:
            raise InvalidInput(f"unknown throttle setting {sorted(unknown)[0]!r}",
                               reason="INVALID_SETTING")
        d = base or cls()
        policy = cls(
            free_attempts=int(data.get("free_attempts", d.free_attempts)),
            base_delay=_seconds(data, "base_delay_seconds", d.base_delay),
            max_delay=_seconds(data, "max_delay_seconds", d.max_delay),
            lockout_after=int(data.get("lockout_after", d.lockout_after)),
            lockout=_seconds(data, "lockout_seconds", d.lockout),
            forget_after=_seconds(data, "forget_after_seconds", d.forget_after),
            success_credit=int(data.get("success_credit", d.success_credit)),
        )
        if policy.success_credit < 0:
            raise InvalidInput("throttle: success_credit must not be negative",
                               reason="INVALID_SETTING")
        if policy.free_attempts < 0 or policy.lockout_after <= policy.free_attempts:
            raise InvalidInput("throttle: lockout_after must exceed free_attempts",
                               reason="INVALID_SETTING")
        return policy

    def current(self, state: ThrottleState, now: dt.datetime) -> ThrottleState:
        """``state`` with forgotten failures dropped."""
        if state.last_failure_at is not None and now - state.last_failure_at > self.forget_after:
            return ThrottleState()
        return state

    def check(self, state: ThrottleState, now: dt.datetime) -> None:
        """Raise :class:`TooManyAttempts` while the key is blocked."""
        state = self.current(state, now)
        if state.blocked_until is not None and state.blocked_until > now:
            wait = int((state.blocked_until - now).total_seconds()) + 1
            raise TooManyAttempts("too many failed attempts; try again later", retry_after=wait)

    def failure(self, state: ThrottleState, now: dt.datetime) -> tuple[ThrottleState, bool]:
        """The state after one more failure, and whether this failure started a lockout."""
        state = self.current(state, now)
        failures = state.failures + 1
        locked_out = failures >= self.lockout_after
        if locked_out:
            blocked: dt.datetime | None = now + self.lockout
        elif failures > self.free_attempts:
            delay = self.base_delay * (2 ** (failures - self.free_attempts - 1))
            blocked = now + min(delay, self.max_delay)
        else:
            blocked = None
        if locked_out:
            failures = self.lockout_after  # each failure after the lockout starts another one
        return ThrottleState(failures, now, blocked), locked_out


    def success(self, state: ThrottleState, now: dt.datetime) -> ThrottleState:
        """The state after a successful login: ``success_credit`` failures fewer, and no longer
        blocked once back within the free attempts."""
        state = self.current(state, now)
        failures = max(0, state.failures - self.success_credit)
        if failures == 0:
            return ThrottleState()
        blocked = state.blocked_until if failures > self.free_attempts else None
        return ThrottleState(failures, state.last_failure_at, blocked)


def _seconds(data: Mapping[str, Any], key: str, default: dt.timedelta) -> dt.timedelta:
    return dt.timedelta(seconds=float(data[key])) if key in data else default
