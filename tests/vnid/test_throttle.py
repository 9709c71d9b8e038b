from __future__ import annotations

import datetime as dt

import pytest

from vnid.authn.throttle import ThrottlePolicy, ThrottleState, TooManyAttempts

T0 = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)


def test_backoff_then_lockout_then_forgotten() -> None:
    policy = ThrottlePolicy()
    state = ThrottleState()
    delays = []
    for i in range(10):
        now = T0 + dt.timedelta(hours=i)
        policy.check(state, now)  # each attempt comes after the previous block has passed
        state, locked = policy.failure(state, now)
        delays.append((state.blocked_until - now).total_seconds() if state.blocked_until
                      else 0)
        assert locked == (i == 9)
    assert delays[:3] == [0, 0, 0] and delays[3:6] == [2, 4, 8] and delays[-1] == 1800
    with pytest.raises(TooManyAttempts) as err:
        policy.check(state, T0 + dt.timedelta(hours=9, minutes=10))
    assert 1190 <= err.value.retry_after <= 1201
    assert policy.current(state, T0 + dt.timedelta(days=2)) == ThrottleState()


def test_settings_are_validated() -> None:
    with pytest.raises(Exception, match="unknown throttle setting"):
        ThrottlePolicy.from_config({"lockout": 3})
    assert ThrottlePolicy.from_config({"lockout_after": 5}).lockout_after == 5
