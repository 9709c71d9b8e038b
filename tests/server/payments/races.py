"""A harness that races two *different* state changes against one payment and then proves the
money invariants (``server.payments.checks``) for it.

Each :class:`Race` prepares a payment in the state the race needs, then runs its two events in
two threads released together by a barrier (each in its own transaction, as two requests or a
request and a worker would). Domain refusals (a refund beyond what is left, money for a closed
payment held instead of applied, an exception already resolved) are legitimate outcomes of a
race; anything else fails the run. Whatever the interleaving, the payment must end with every
transfer accounted once, received = applied + held, refunds within what was collected, and a
zero trial balance.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import payments.errors as pe
from payments.payments import Payer
from server.payments.checks import check_database
from server.payments.common import trial_balance
from tests.payments.support import HCM, T0
from tests.server.payments.conftest import World

__all__ = ["RACES", "Race", "Setup", "run_race"]

_n = itertools.count(1)
NOW = T0 + dt.timedelta(minutes=5)
AFTER_EXPIRY = T0 + dt.timedelta(hours=2)


@dataclass
class Setup:
    """The payment under test and what the events need (exception ids, amounts)."""

    world: World
    payment_id: str
    due: int
    exceptions: list[int]


Event = Callable[[Setup], Any]


@dataclass(frozen=True)
class Race:
    name: str
    prepare: Callable[[World], Setup]
    first: Event
    second: Event


def new_payment(world: World, *, channel: str = "vietqr") -> tuple[str, int]:
    key = uuid.uuid4().hex[:16]
    p = world.payments.create_payment(
        caller="race", request_id=f"race-{key}", agency_code=HCM, province="79",
        procedure_code="1.000494", dossier_code=f"RACE-{key}", payer=Payer("Trần Thị B"),
        channel=channel, now=T0)
    world.payments.open(p.id, channel_url="", actor="race", request_id="open", now=T0)
    return p.id, p.amount_due


def transfer(s: Setup, amount: int, *, channel: str = "vietqr", exact: bool = False,
             at: dt.datetime = NOW) -> Any:
    p = s.world.payments.get(s.payment_id)
    return s.world.payments.confirm(
        channel=channel, transaction_id=f"TX{next(_n):08d}{uuid.uuid4().hex[:6]}",
        reference=p.reference, amount=amount, at=at, success=True, exact_amount=exact,
        request_id="race", now=at)


def refund(s: Setup, amount: int) -> Any:
    return s.world.payments.refund(caller="officer", request_id=uuid.uuid4().hex,
                                   payment_id=s.payment_id, amount=amount, reason="race",
                                   now=NOW, agency_code=None)


def resolve(s: Setup, index: int) -> Any:
    return s.world.recon.resolve(s.exceptions[index], action="apply_to_payment",
                                 payment_id=s.payment_id, actor="officer",
                                 request_id=uuid.uuid4().hex, now=NOW)


# ---------------------------------------------------------------- preparations
def awaiting(world: World) -> Setup:
    pid, due = new_payment(world)
    return Setup(world, pid, due, [])


def paid(world: World) -> Setup:
    s = awaiting(world)
    transfer(s, s.due, at=T0)
    return s


def overpaid(world: World) -> Setup:
    """Paid half as much again as due (a transfer beyond what is due is held for refund)."""
    s = awaiting(world)
    transfer(s, s.due // 2, at=T0)
    transfer(s, s.due, at=T0)
    return s


def with_held_money(count: int) -> Callable[[World], Setup]:
    """An open payment with ``count`` transfers held as exceptions: a platform confirmation of
    the wrong amount (the platform must send exactly what is due)."""

    def prepare(world: World) -> Setup:
        s = awaiting(world)
        for _ in range(count):
            transfer(s, s.due // 3, channel="platform", exact=True, at=T0)
        opened = [e.id for e in world.recon.exceptions(size=1000)
                  if e.payment_ids == s.payment_id and e.state == "open"]
        assert len(opened) == count
        s.exceptions = opened
        return s

    return prepare


RACES = [
    Race("two transfers", awaiting,
         lambda s: transfer(s, s.due // 2), lambda s: transfer(s, s.due - s.due // 2)),
    Race("two full transfers", awaiting,
         lambda s: transfer(s, s.due), lambda s: transfer(s, s.due)),
    Race("transfer and refund", paid,
         lambda s: transfer(s, s.due // 4), lambda s: refund(s, s.due // 2)),
    Race("transfer and expiry", awaiting,
         lambda s: transfer(s, s.due, at=AFTER_EXPIRY),
         lambda s: s.world.payments.expire_due(now=AFTER_EXPIRY)),
    Race("transfer and cancel", awaiting,
         lambda s: transfer(s, s.due),
         lambda s: s.world.payments.cancel(s.payment_id, actor="officer", request_id="cancel",
                                           now=NOW)),
    Race("transfer and resolution", with_held_money(1),
         lambda s: transfer(s, s.due), lambda s: resolve(s, 0)),
    Race("two resolutions", with_held_money(2),
         lambda s: resolve(s, 0), lambda s: resolve(s, 1)),
    Race("one resolution twice", with_held_money(1),
         lambda s: resolve(s, 0), lambda s: resolve(s, 0)),
    Race("refund and refund", overpaid,
         lambda s: refund(s, s.due), lambda s: refund(s, s.due)),
]

# Outcomes a race may legitimately produce for one of its events.
ACCEPTED = (pe.RefundExceedsCollected, pe.InvalidTransition, pe.PaymentExpired,
            pe.FailedPrecondition, pe.Conflict)


def run_race(world: World, race: Race) -> tuple[str, list[str]]:
    """Run ``race`` once; return the payment and what each event did (a result or the
    refusal's class)."""
    s = race.prepare(world)
    barrier = threading.Barrier(2)

    def run(event: Event) -> str:
        barrier.wait(timeout=10)
        try:
            result = event(s)
        except ACCEPTED as exc:
            return type(exc).__name__
        return getattr(getattr(result, "outcome", None), "value", "done")

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(run, (race.first, race.second)))
    violations = [str(v) for v in check_database(world.db, [s.payment_id])]
    assert violations == [], (race.name, outcomes, violations)
    with world.db.read() as session:
        assert trial_balance(session).difference == 0
    return s.payment_id, outcomes
