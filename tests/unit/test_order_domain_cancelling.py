"""Cancelling an order: what it compensates in each status, who cancelled, and when it cannot be."""

from __future__ import annotations

import pytest

from order.domain import (
    CancellationReason,
    CancelRequested,
    Compensation,
    HistoryEntry,
    IllegalTransition,
    PaymentRefunded,
    RefundPayment,
    ReleaseStock,
    ReservationExpired,
    Status,
    Step,
    StockReleased,
    VoidPayment,
)
from tests.unit.order_sagas import (
    awaiting_payment,
    cancelled_from,
    committing,
    confirmed,
    decide,
    delivered,
    paid,
    pending,
    shipped,
)


@pytest.mark.parametrize(
    ("state", "compensations"),
    [
        # Both commands went out with the order: either may still be under way.
        (pending, {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT}),
        (paid, {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT}),
        (awaiting_payment, {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT}),
        (committing, {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT}),
        (confirmed, {Compensation.RELEASE_STOCK, Compensation.REFUND_PAYMENT}),
    ],
)
def test_cancelling_compensates_what_the_order_holds(state, compensations):
    outcome = decide(state(), CancelRequested(by="acc-1", note="changed my mind"))

    assert outcome.saga.status is Status.CANCELLED
    assert outcome.saga.cancellation_reason is CancellationReason.CUSTOMER_CANCELLED
    assert outcome.saga.pending == compensations
    text = "cancelled by the customer: changed my mind"
    expected = {
        Compensation.RELEASE_STOCK: ReleaseStock(text),
        Compensation.VOID_PAYMENT: VoidPayment(text),
        Compensation.REFUND_PAYMENT: RefundPayment(text),
    }
    assert set(outcome.commands) == {expected[c] for c in compensations}
    assert outcome.history == (HistoryEntry(Status.CANCELLED, text, "acc-1"),)


def test_an_admin_cancelling_someone_elses_order_is_recorded_as_such():
    outcome = decide(confirmed(), CancelRequested(by="admin-1", by_owner=False))

    assert outcome.saga.cancellation_reason is CancellationReason.ADMIN_CANCELLED
    assert outcome.history == (HistoryEntry(Status.CANCELLED, "cancelled by an administrator", "admin-1"),)


@pytest.mark.parametrize("state", [shipped, delivered])
def test_a_shipped_or_delivered_order_cannot_be_cancelled(state):
    with pytest.raises(IllegalTransition) as raised:
        decide(state(), CancelRequested(by="acc-1"))

    assert raised.value.status is state().status


def test_cancelling_a_cancelled_order_changes_nothing():
    saga = cancelled_from(pending())

    outcome = decide(saga, CancelRequested(by="acc-1"))

    assert outcome.saga == saga
    assert outcome.commands == outcome.history == ()


def test_refund_after_cancelling_a_confirmed_order_ends_the_compensation_once_both_are_answered():
    saga = cancelled_from(confirmed())

    refunded = decide(saga, PaymentRefunded("pay-1"))
    released = decide(refunded.saga, StockReleased())

    assert refunded.saga.pending == {Compensation.RELEASE_STOCK}
    assert refunded.saga.step is Step.COMPENSATE
    assert released.saga.step is None
    assert released.saga.status is Status.CANCELLED
    assert refunded.commands == released.commands == ()


def test_an_expiry_reported_for_a_cancelled_order_counts_as_its_stock_release():
    saga = cancelled_from(awaiting_payment())

    outcome = decide(saga, ReservationExpired())

    assert outcome.saga.pending == {Compensation.VOID_PAYMENT}
