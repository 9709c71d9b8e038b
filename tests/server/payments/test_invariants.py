"""Paths the per-payment checker found wrong (each a regression test on both databases)."""

from __future__ import annotations

import datetime as dt

from server.payments.checks import check_database
from server.payments.common import trial_balance
from tests.payments.support import T0
from tests.server.payments.conftest import World
from tests.server.payments.races import Setup, new_payment, transfer


def test_a_refunded_late_payment_that_expires_again_holds_only_what_is_left(
        world: World) -> None:
    """Half paid, expired (the half is held), 1,000 of it refunded, re-opened by an officer
    applying late money, expired again: the payment and OVERPAYMENTS both hold what was
    collected less the refund. The closing used to move the refunded 1,000 to OVERPAYMENTS a
    second time (OVERPAYMENTS 1,000 above the payment's held money, RECEIVABLES stuck at
    1,000), with the trial balance still zero."""
    pid, due = new_payment(world)
    s = Setup(world, pid, due, [])
    transfer(s, due // 2, at=T0)
    assert world.payments.expire_due(now=T0 + dt.timedelta(hours=1)) == 1
    world.payments.refund(caller="officer", request_id="late-refund-0001", payment_id=pid,
                          amount=1000, reason="x", now=T0 + dt.timedelta(hours=1),
                          agency_code=None)
    transfer(s, 5000, channel="platform", exact=True, at=T0 + dt.timedelta(hours=2))
    [held] = [e for e in world.recon.exceptions() if e.payment_ids == pid]
    world.recon.resolve(held.id, action="apply_to_payment", payment_id=pid, actor="officer",
                        request_id="late-apply", now=T0 + dt.timedelta(hours=2))
    assert world.payments.get(pid).state.value == "partially_paid"
    assert check_database(world.db) == []
    assert world.payments.expire_due(now=T0 + dt.timedelta(days=2)) == 1
    p = world.payments.get(pid)
    assert (p.state.value, p.collected, p.refunded, p.held) == (
        "expired", due // 2 + 5000, 1000, due // 2 + 5000 - 1000)
    assert [str(v) for v in check_database(world.db)] == []
    with world.db.read() as session:
        assert trial_balance(session).difference == 0
