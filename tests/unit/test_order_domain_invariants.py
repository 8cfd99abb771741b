"""Invariants of the order saga over every reachable state and every event."""

from __future__ import annotations

from dataclasses import replace

import pytest

from order.domain import (
    AuthorizePayment,
    CancelRequested,
    CommitStock,
    Compensation,
    DeadlinePassed,
    DeliverRequested,
    IllegalTransition,
    Part,
    PaymentVoided,
    RefundPayment,
    ReserveStock,
    Saga,
    ShipRequested,
    Status,
    Step,
    StockReleased,
    VoidPayment,
)
from tests.unit.order_sagas import MANUAL, NOW, REPLIES, committing, decide, pending


def reachable_states(depth: int = 5) -> set[Saga]:
    """Every state reachable from a new order by up to `depth` events, with deadlines allowed to pass."""
    events = [*REPLIES, *MANUAL, CancelRequested(by="admin", by_owner=False), DeadlinePassed()]
    seen = {pending()}
    frontier = {pending()}
    for _ in range(depth):
        following = set()
        for saga in frontier:
            for event in events:
                now = saga.deadline_at if isinstance(event, DeadlinePassed) and saga.deadline_at else NOW
                try:
                    following.add(decide(saga, event, now).saga)
                except IllegalTransition:
                    continue
        frontier = following - seen
        seen |= following
    return seen


STATES = sorted(reachable_states(), key=repr)


def test_the_reachable_states_cover_every_status_and_step():
    assert {s.status for s in STATES} == set(Status)
    assert {s.step for s in STATES} == {*Step, None}


@pytest.mark.parametrize("event", [*REPLIES, *MANUAL, DeadlinePassed()], ids=lambda e: type(e).__name__)
def test_invariants_hold_for_every_reachable_state(event):
    for saga in STATES:
        now = saga.deadline_at if isinstance(event, DeadlinePassed) and saga.deadline_at else NOW
        try:
            outcome = decide(saga, event, now)
        except IllegalTransition:
            assert isinstance(event, (CancelRequested, ShipRequested, DeliverRequested))
            continue
        new = outcome.saga
        # A saga in flight always has a deadline; a settled one has none.
        assert (new.step is None) == (new.deadline_at is None), (saga, event)
        # Compensations are pending only while compensating, and only for cancelled orders.
        assert bool(new.pending) == (new.step is Step.COMPENSATE), (saga, event)
        # The forward commands awaited are tracked only while both may still be unanswered.
        assert bool(new.awaiting) == (new.step is Step.RESERVE_AND_AUTHORIZE), (saga, event)
        # AWAITING_PAYMENT: the stock is reserved, the payment (and only it) still unanswered.
        if new.step is Step.RESERVE_AND_AUTHORIZE:
            assert (new.status is Status.AWAITING_PAYMENT) == (new.awaiting == {Part.AUTHORIZE_PAYMENT})
        assert (new.status is Status.CANCELLED) == (new.cancellation_reason is not None)
        # A cancelled order stays cancelled; nothing comes back from SHIPPED or DELIVERED but forward.
        if saga.status is Status.CANCELLED:
            assert new.status is Status.CANCELLED
        if saga.status is Status.DELIVERED:
            assert new == saga
        # One status change at most, and its history entry names the status entered.
        assert len(outcome.history) <= 1
        if outcome.history:
            assert outcome.history[0].status is new.status != saga.status
        else:
            assert new.status is saga.status
        # Forward commands only from forward steps; a payment is never refunded and voided at once.
        kinds = {type(c) for c in outcome.commands}
        if new.status is Status.CANCELLED:
            assert not kinds & {ReserveStock, AuthorizePayment, CommitStock}
        assert not {RefundPayment, VoidPayment} <= kinds


def test_a_payment_is_refunded_only_for_an_order_that_was_confirmed():
    for saga in STATES:
        for event in [*REPLIES, *MANUAL, DeadlinePassed()]:
            now = saga.deadline_at if isinstance(event, DeadlinePassed) and saga.deadline_at else NOW
            try:
                outcome = decide(saga, event, now)
            except IllegalTransition:
                continue
            if any(isinstance(c, RefundPayment) for c in outcome.commands):
                assert saga.status is Status.CONFIRMED or Compensation.REFUND_PAYMENT in saga.pending


def test_the_payment_id_once_known_is_kept():
    saga = replace(committing(), payment_id="pay-1")
    for event in [CancelRequested(by="x"), StockReleased(), PaymentVoided("")]:
        saga = decide(saga, event).saga
    assert saga.payment_id == "pay-1"
