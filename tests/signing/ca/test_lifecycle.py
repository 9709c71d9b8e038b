"""Request states, working days, status changes and the managing-body rule."""

from __future__ import annotations

import datetime as dt

import pytest

from signing.ca import (
    CertificateStatus,
    RequestState,
    RevocationReason,
    Timeline,
    is_parent_or_same,
    next_status,
    require_managing_body,
    working_days_between,
)
from signing.ca.authorization import NotManagingBody
from signing.ca.requests import InvalidTransition, check_transition
from signing.ca.revocation import InvalidStatusChange
from signing.errors import InvalidInput

VN = dt.timezone(dt.timedelta(hours=7))


def test_request_state_machine() -> None:
    check_transition(RequestState.SUBMITTED, RequestState.APPROVED)
    check_transition(RequestState.APPROVED, RequestState.COMPLETED)
    check_transition(RequestState.SUBMITTED, RequestState.REJECTED)
    for current, target in [(RequestState.SUBMITTED, RequestState.COMPLETED),
                            (RequestState.COMPLETED, RequestState.REJECTED),
                            (RequestState.REJECTED, RequestState.APPROVED)]:
        with pytest.raises(InvalidTransition):
            check_transition(current, target)


def test_working_days_skip_weekends_and_holidays_in_vietnam_time() -> None:
    # Friday 2 May 2025 09:00 to Tuesday 6 May 09:00 (Vietnam): Fri 15h + Mon 24h + Tue 9h.
    start = dt.datetime(2025, 5, 2, 9, tzinfo=VN)
    end = dt.datetime(2025, 5, 6, 9, tzinfo=VN)
    assert working_days_between(start, end) == pytest.approx(2.0)
    assert working_days_between(start, end, {dt.date(2025, 5, 5)}) == pytest.approx(1.0)
    # The same instants in UTC give the same answer.
    assert working_days_between(start.astimezone(dt.UTC), end.astimezone(dt.UTC)) == \
        pytest.approx(2.0)
    t = Timeline(submitted_at=start, completed_at=dt.datetime(2025, 5, 9, 10, tzinfo=VN))
    assert t.within_target(3) is False
    assert Timeline(submitted_at=start, completed_at=end).within_target(3) is True
    assert Timeline(submitted_at=start).working_days() is None


def test_status_changes() -> None:
    v, h, r = CertificateStatus.VALID, CertificateStatus.ON_HOLD, CertificateStatus.REVOKED
    assert next_status(v, RevocationReason.KEY_COMPROMISE) is r
    assert next_status(v, RevocationReason.CERTIFICATE_HOLD) is h
    assert next_status(h, None) is v
    assert next_status(h, RevocationReason.SUPERSEDED) is r
    for current, reason in [(r, RevocationReason.KEY_COMPROMISE), (v, None),
                            (h, RevocationReason.CERTIFICATE_HOLD), (r, None)]:
        with pytest.raises(InvalidStatusChange):
            next_status(current, reason)


def test_reason_codes_follow_rfc_5280() -> None:
    assert RevocationReason.KEY_COMPROMISE.code == 1
    assert RevocationReason.CERTIFICATE_HOLD.code == 6
    assert RevocationReason.PRIVILEGE_WITHDRAWN.code == 9
    assert RevocationReason.from_code(3) is RevocationReason.AFFILIATION_CHANGED
    for code in (2, 7, 8, 10, 42):  # CA compromise, unused, removeFromCRL, AA compromise
        with pytest.raises(InvalidInput):
            RevocationReason.from_code(code)


@pytest.mark.parametrize("actor, body, allowed", [
    ("000.00.00.H29", "000.00.00.H29", True),
    ("000.00.00.H29", "000.00.31.H29", True),
    ("000.00.00.H29", "000.12.31.H29", True),
    ("000.00.31.H29", "000.12.31.H29", True),
    ("000.00.31.H29", "000.12.32.H29", False),
    ("000.00.31.H29", "000.00.00.H29", False),  # a child never manages its parent
    ("000.00.00.H29", "000.00.31.H26", False),
    ("H55", "H55.242", True),
    ("H55", "H550.1", False),
    ("H55.242", "H55", False),
    ("H29", "000.00.00.H29", False),  # different forms never relate
])
def test_managing_body_hierarchy(actor: str, body: str, allowed: bool) -> None:
    assert is_parent_or_same(actor, body) is allowed
    if not allowed:
        with pytest.raises(NotManagingBody):
            require_managing_body(actor, body)
