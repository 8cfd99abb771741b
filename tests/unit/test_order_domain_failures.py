"""The order saga's failures and their compensations: stock rejected, payment declined or unavailable,
reservations expiring."""

from __future__ import annotations

import pytest

from order.domain import (
    AuthorizePayment,
    CancellationReason,
    Compensation,
    DeadlinePassed,
    HistoryEntry,
    PaymentFailed,
    ReleaseStock,
    ReservationExpired,
    Status,
    Step,
    StockRejected,
    StockReleased,
    VoidPayment,
)
from tests.unit.order_sagas import LATER, NOW, POLICY, awaiting_payment, committing, decide, paid, pending


@pytest.mark.parametrize("state", [pending, paid])
def test_stock_rejected_cancels_as_out_of_stock_and_voids_the_authorisation(state):
    outcome = decide(state(), StockRejected("p1 (insufficient stock)"))

    text = "out of stock: p1 (insufficient stock)"
    assert outcome.saga.status is Status.CANCELLED
    assert outcome.saga.cancellation_reason is CancellationReason.OUT_OF_STOCK
    assert outcome.saga.step is Step.COMPENSATE
    assert outcome.saga.pending == {Compensation.VOID_PAYMENT}
    assert outcome.saga.awaiting == frozenset()
    assert outcome.commands == (VoidPayment(text),)
    assert outcome.history == (HistoryEntry(Status.CANCELLED, text),)


@pytest.mark.parametrize("state", [pending, awaiting_payment])
def test_a_declined_payment_cancels_and_releases_the_stock_held_or_still_to_be(state):
    outcome = decide(state(), PaymentFailed(retryable=False, detail="declined", payment_id="pay-9"))

    assert outcome.saga.status is Status.CANCELLED
    assert outcome.saga.cancellation_reason is CancellationReason.PAYMENT_DECLINED
    assert outcome.saga.step is Step.COMPENSATE
    assert outcome.saga.pending == {Compensation.RELEASE_STOCK}
    assert outcome.saga.payment_id == "pay-9"
    assert outcome.commands == (ReleaseStock("payment declined: declined"),)
    assert outcome.history == (HistoryEntry(Status.CANCELLED, "payment declined: declined"),)


def test_the_stock_release_ends_the_compensation():
    declined = decide(awaiting_payment(), PaymentFailed(retryable=False)).saga

    outcome = decide(declined, StockReleased())

    assert outcome.saga.step is None
    assert outcome.saga.pending == frozenset()
    assert outcome.saga.deadline_at is None
    assert outcome.saga.status is Status.CANCELLED
    assert outcome.commands == outcome.history == ()


def test_a_retryable_payment_failure_waits_and_the_timer_sends_the_payment_again():
    failed = decide(awaiting_payment(), PaymentFailed(retryable=True))

    assert failed.saga.status is Status.AWAITING_PAYMENT
    assert failed.saga.deadline_at == NOW + POLICY.payment_retry_delay
    assert failed.commands == failed.history == ()

    resent = decide(failed.saga, DeadlinePassed(), NOW + POLICY.payment_retry_delay)
    assert resent.commands == (AuthorizePayment(),)
    assert resent.saga.attempts == 2


def test_the_pause_after_retryable_failures_doubles():
    saga = awaiting_payment()
    saga = decide(decide(saga, PaymentFailed(retryable=True)).saga, DeadlinePassed(), LATER).saga

    outcome = decide(saga, PaymentFailed(retryable=True), LATER)

    assert outcome.saga.deadline_at == LATER + 2 * POLICY.payment_retry_delay


def test_retryable_failures_past_the_budget_cancel_as_payment_unavailable_and_void():
    saga = awaiting_payment()
    for _ in range(POLICY.retry_budget):
        saga = decide(saga, PaymentFailed(retryable=True)).saga
        saga = decide(saga, DeadlinePassed(), saga.deadline_at).saga  # type: ignore[arg-type]
    assert saga.attempts == POLICY.max_sends

    outcome = decide(saga, PaymentFailed(retryable=True))

    assert outcome.saga.cancellation_reason is CancellationReason.PAYMENT_UNAVAILABLE
    assert outcome.saga.pending == {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT}
    reason = f"payment unavailable after {POLICY.max_sends} attempts"
    assert outcome.commands == (ReleaseStock(reason), VoidPayment(reason))


def test_a_reservation_expiring_before_payment_cancels_as_expired_and_voids():
    outcome = decide(awaiting_payment(), ReservationExpired())

    assert outcome.saga.cancellation_reason is CancellationReason.EXPIRED
    assert outcome.saga.pending == {Compensation.VOID_PAYMENT}
    assert outcome.commands == (VoidPayment("stock reservation expired before payment"),)


@pytest.mark.parametrize("answer", [ReservationExpired(), StockReleased()])
def test_commit_answered_with_an_expired_reservation_cancels_and_voids_the_payment(answer):
    outcome = decide(committing(), answer)

    assert outcome.saga.status is Status.CANCELLED
    assert outcome.saga.cancellation_reason is CancellationReason.EXPIRED
    assert outcome.saga.pending == {Compensation.VOID_PAYMENT}
    assert outcome.commands == (VoidPayment("stock reservation expired before it was committed"),)
    assert outcome.saga.payment_id == "pay-1"


@pytest.mark.parametrize("state", [pending, paid])
def test_an_expiry_reported_while_reserving_cancels_and_voids_with_nothing_to_release(state):
    outcome = decide(state(), ReservationExpired())

    assert outcome.saga.cancellation_reason is CancellationReason.EXPIRED
    assert outcome.saga.pending == {Compensation.VOID_PAYMENT}
    assert outcome.commands == (VoidPayment("stock reservation expired before payment"),)
