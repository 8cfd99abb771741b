"""The order saga's deadlines: a step's command resent, its retry budget, and compensations resent until answered."""

from __future__ import annotations

from datetime import timedelta

import pytest

from order.domain import (
    AuthorizePayment,
    CancellationReason,
    CommitStock,
    Compensation,
    DeadlinePassed,
    PaymentVoided,
    ReleaseStock,
    ReserveStock,
    Saga,
    Status,
    Step,
    VoidPayment,
)
from tests.unit.order_sagas import (
    LATER,
    NOW,
    POLICY,
    awaiting_payment,
    cancelled_from,
    committing,
    confirmed,
    decide,
    delivered,
    paid,
    pending,
    settled_cancelled,
    shipped,
)


@pytest.mark.parametrize(
    ("state", "command"),
    [
        (pending, (ReserveStock(), AuthorizePayment())),
        (awaiting_payment, (AuthorizePayment(),)),
        (paid, (ReserveStock(),)),
        (committing, (CommitStock(),)),
    ],
)
def test_a_passed_deadline_resends_only_the_unanswered_commands(state, command):
    outcome = decide(state(), DeadlinePassed(), LATER)

    assert outcome.commands == command
    assert outcome.saga.attempts == 2
    assert outcome.saga.deadline_at == LATER + POLICY.step_deadline
    assert outcome.saga.status is state().status
    assert outcome.history == ()


@pytest.mark.parametrize("state", [pending, awaiting_payment, committing, lambda: cancelled_from(pending())])
def test_a_deadline_not_yet_passed_changes_nothing(state):
    saga = state()

    outcome = decide(saga, DeadlinePassed(), saga.deadline_at - timedelta(seconds=1))

    assert outcome.saga == saga
    assert outcome.commands == ()
    assert outcome.ignored


@pytest.mark.parametrize("state", [confirmed, shipped, delivered, lambda: settled_cancelled(pending())])
def test_a_deadline_tick_on_a_settled_order_changes_nothing(state):
    outcome = decide(state(), DeadlinePassed(), LATER)

    assert outcome.saga == state()
    assert outcome.commands == outcome.history == ()


def exhaust(saga: Saga) -> Saga:
    now = NOW
    while saga.attempts < POLICY.max_sends:
        now = saga.deadline_at  # type: ignore[assignment]
        saga = decide(saga, DeadlinePassed(), now).saga
    return saga


@pytest.mark.parametrize(
    ("state", "reason", "compensations"),
    [
        (
            pending,
            CancellationReason.INVENTORY_UNAVAILABLE,
            {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT},
        ),
        (
            paid,
            CancellationReason.INVENTORY_UNAVAILABLE,
            {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT},
        ),
        (
            awaiting_payment,
            CancellationReason.PAYMENT_UNAVAILABLE,
            {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT},
        ),
        (
            committing,
            CancellationReason.INVENTORY_UNAVAILABLE,
            {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT},
        ),
    ],
)
def test_past_the_retry_budget_a_step_compensates(state, reason, compensations):
    saga = exhaust(state())
    assert saga.attempts == POLICY.max_sends

    outcome = decide(saga, DeadlinePassed(), saga.deadline_at)  # type: ignore[arg-type]

    assert outcome.saga.status is Status.CANCELLED
    assert outcome.saga.cancellation_reason is reason
    assert outcome.saga.pending == compensations
    assert outcome.saga.step is Step.COMPENSATE
    assert {type(c) for c in outcome.commands} == {
        {Compensation.RELEASE_STOCK: ReleaseStock, Compensation.VOID_PAYMENT: VoidPayment}[c]
        for c in compensations
    }
    assert [h.status for h in outcome.history] == [Status.CANCELLED]


def test_unanswered_compensations_are_resent_with_a_growing_pause_and_never_abandoned():
    saga = cancelled_from(awaiting_payment())
    pauses = []
    for _ in range(8):
        now = saga.deadline_at
        outcome = decide(saga, DeadlinePassed(), now)  # type: ignore[arg-type]
        assert outcome.commands == (
            ReleaseStock("order cancelled (CUSTOMER_CANCELLED)"),
            VoidPayment("order cancelled (CUSTOMER_CANCELLED)"),
        )
        saga = outcome.saga
        pauses.append(saga.deadline_at - now)  # type: ignore[operator]

    step = POLICY.step_deadline
    assert pauses == [2 * step, 4 * step, 8 * step, 8 * step, 8 * step, 8 * step, 8 * step, 8 * step]
    assert saga.status is Status.CANCELLED
    assert saga.step is Step.COMPENSATE


def test_only_the_compensations_still_pending_are_resent():
    saga = decide(cancelled_from(awaiting_payment()), PaymentVoided("pay-1")).saga

    outcome = decide(saga, DeadlinePassed(), saga.deadline_at)  # type: ignore[arg-type]

    assert outcome.commands == (ReleaseStock("order cancelled (CUSTOMER_CANCELLED)"),)
