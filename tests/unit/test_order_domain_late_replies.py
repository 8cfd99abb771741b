"""Late, duplicate and out-of-order replies to the order saga change nothing they should not."""

from __future__ import annotations

import itertools

import pytest

from order.domain import (
    AuthorizePayment,
    CancellationReason,
    CommitStock,
    Compensation,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    PaymentVoided,
    ReleaseStock,
    ReserveStock,
    Saga,
    Status,
    Step,
    StockCommitted,
    StockReleased,
    StockReserved,
    VoidPayment,
)
from tests.unit.order_sagas import (
    ALL_STATES,
    NOW,
    POLICY,
    REPLIES,
    awaiting_payment,
    cancelled_from,
    confirmed,
    decide,
    pending,
    run,
    settled_out_of_stock,
)

# The replies each state acts on; every other reply must change nothing.
ACTED_ON = {
    "pending": {"StockReserved", "StockRejected", "ReservationExpired", "PaymentSucceeded", "PaymentFailed"},
    "awaiting_payment": {"PaymentSucceeded", "PaymentFailed", "ReservationExpired"},
    "paid": {"StockReserved", "StockRejected", "ReservationExpired"},
    "committing": {"StockCommitted", "ReservationExpired", "StockReleased"},
    "confirmed": set(),
    "shipped": set(),
    "delivered": set(),
    # Pending: release and void (answered by StockReleased / ReservationExpired and PaymentVoided).
    "cancelled_compensating": {"StockReleased", "ReservationExpired", "PaymentVoided"},
    # A reservation reported after the order settled is released (again: idempotent).
    "cancelled_settled": {"StockReserved"},
    # A charge or a reservation reported after the order settled is undone.
    "out_of_stock": {"PaymentSucceeded", "StockReserved"},
}


@pytest.mark.parametrize(
    ("name", "reply"), list(itertools.product(sorted(ALL_STATES), REPLIES)), ids=lambda v: str(v)[:40]
)
def test_every_reply_a_state_does_not_wait_for_changes_nothing(name, reply):
    saga = ALL_STATES[name]()

    outcome = decide(saga, reply)

    if type(reply).__name__ in ACTED_ON[name]:
        assert outcome.saga != saga or outcome.commands, f"{name} should act on {reply}"
        assert not outcome.ignored
    else:
        assert outcome.saga == saga
        assert outcome.commands == outcome.history == ()
        assert outcome.ignored


@pytest.mark.parametrize("name", sorted(ALL_STATES))
@pytest.mark.parametrize("reply", REPLIES, ids=lambda v: type(v).__name__)
def test_a_reply_delivered_twice_changes_nothing_the_second_time(name, reply):
    first = decide(ALL_STATES[name](), reply)

    second = decide(first.saga, reply)

    assert second.saga == first.saga
    assert second.commands == second.history == ()


def test_duplicate_replies_along_the_whole_saga_give_the_same_result_as_single_ones():
    replies = [StockReserved(), PaymentSucceeded("pay-1"), StockCommitted()]
    doubled = [r for reply in replies for r in (reply, reply)]

    single = run(replies)
    twice = run(doubled)

    assert twice == single


def test_a_reply_overtaken_by_the_next_step_is_ignored():
    saga, commands, history = run(
        [
            StockReserved(),
            PaymentSucceeded("pay-1"),
            StockReserved(),
            PaymentSucceeded("pay-1"),
            StockCommitted(),
        ]
    )

    assert saga.status is Status.CONFIRMED
    assert commands == [ReserveStock(), AuthorizePayment(), CommitStock()]
    assert [h.status for h in history] == [Status.PENDING, Status.AWAITING_PAYMENT, Status.CONFIRMED]


def test_a_payment_reply_arriving_before_the_stock_reply_is_kept_and_both_lead_to_the_commit():
    saga, commands, history = run([PaymentSucceeded("pay-1"), StockReserved()])

    assert saga.status is Status.PENDING
    assert saga.step is Step.COMMIT_STOCK
    assert saga.payment_id == "pay-1"
    assert commands == [ReserveStock(), AuthorizePayment(), CommitStock()]
    assert [h.status for h in history] == [Status.PENDING]


def test_a_late_success_after_a_failure_is_ignored_once_the_order_is_cancelled_and_released():
    saga, commands, _ = run(
        [
            StockReserved(),
            PaymentFailed(retryable=False, payment_id="pay-1"),
            StockReleased(),
            PaymentSucceeded("pay-1"),
        ]
    )

    # The payment is known (it failed); nothing more is sent.
    assert saga == Saga(
        status=Status.CANCELLED, cancellation_reason=CancellationReason.PAYMENT_DECLINED, payment_id="pay-1"
    )
    assert commands == [ReserveStock(), AuthorizePayment(), ReleaseStock("payment declined")]


def test_a_charge_reported_after_an_out_of_stock_order_settled_is_voided_again():
    out_of_stock = settled_out_of_stock()

    outcome = decide(out_of_stock, PaymentSucceeded("pay-7"))
    voided = decide(outcome.saga, PaymentVoided("pay-7"))

    assert outcome.commands == (VoidPayment("payment succeeded after the order was cancelled"),)
    assert outcome.saga.pending == {Compensation.VOID_PAYMENT}
    assert outcome.saga.deadline_at == NOW + POLICY.step_deadline
    assert voided.saga.step is None
    assert voided.saga.status is Status.CANCELLED


def test_a_late_success_for_an_order_cancelled_while_paying_is_left_to_the_void_already_sent():
    saga = cancelled_from(awaiting_payment())

    outcome = decide(saga, PaymentSucceeded("pay-1"))

    assert outcome.saga == saga
    assert outcome.commands == ()


def test_a_late_stock_reservation_for_a_cancelled_order_is_left_to_the_release_already_sent():
    saga = cancelled_from(pending())

    outcome = decide(saga, StockReserved())

    assert outcome.saga == saga
    assert outcome.commands == ()


def test_an_admin_refund_of_a_confirmed_order_does_not_change_the_order():
    outcome = decide(confirmed(), PaymentRefunded("pay-1"))

    assert outcome.saga == confirmed()
    assert outcome.ignored
