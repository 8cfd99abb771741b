"""The order saga's happy path: placed, stock reserved, paid, committed, confirmed, then shipped and delivered."""

from __future__ import annotations

from order import domain
from order.domain import (
    AuthorizePayment,
    CommitStock,
    DeliverRequested,
    HistoryEntry,
    Part,
    PaymentSucceeded,
    ReserveStock,
    Saga,
    ShipRequested,
    Status,
    Step,
    StockCommitted,
    StockReserved,
)
from tests.unit.order_sagas import NOW, POLICY, awaiting_payment, committing, confirmed, decide, pending, run


def test_placing_an_order_makes_it_pending_and_reserves_stock_and_authorizes_the_payment_at_once():
    outcome = domain.place(NOW, POLICY)

    assert outcome.saga == Saga(
        status=Status.PENDING,
        step=Step.RESERVE_AND_AUTHORIZE,
        attempts=1,
        deadline_at=NOW + POLICY.step_deadline,
        awaiting=frozenset({Part.RESERVE_STOCK, Part.AUTHORIZE_PAYMENT}),
    )
    assert outcome.commands == (ReserveStock(), AuthorizePayment())
    assert outcome.history == (HistoryEntry(Status.PENDING, "order placed"),)


def test_stock_reserved_first_moves_to_awaiting_payment_and_sends_nothing():
    outcome = decide(pending(), StockReserved())

    assert outcome.saga.status is Status.AWAITING_PAYMENT
    assert outcome.saga.step is Step.RESERVE_AND_AUTHORIZE
    assert outcome.saga.awaiting == {Part.AUTHORIZE_PAYMENT}
    assert outcome.saga.attempts == 1
    assert outcome.saga.deadline_at == NOW + POLICY.step_deadline
    assert outcome.commands == ()
    assert outcome.history == (HistoryEntry(Status.AWAITING_PAYMENT, "stock reserved"),)


def test_payment_succeeded_commits_the_stock_without_confirming_yet():
    outcome = decide(awaiting_payment(), PaymentSucceeded("pay-1"))

    assert outcome.saga.status is Status.AWAITING_PAYMENT
    assert outcome.saga.step is Step.COMMIT_STOCK
    assert outcome.saga.awaiting == frozenset()
    assert outcome.saga.payment_id == "pay-1"
    assert outcome.commands == (CommitStock(),)
    assert outcome.history == ()


def test_stock_committed_confirms_the_order_and_ends_the_saga():
    outcome = decide(committing(), StockCommitted())

    assert outcome.saga == Saga(status=Status.CONFIRMED, payment_id="pay-1")
    assert outcome.commands == ()
    assert outcome.history == (HistoryEntry(Status.CONFIRMED, "payment succeeded and stock committed"),)


def test_the_whole_happy_path_has_the_history_pending_awaiting_payment_confirmed():
    saga, commands, history = run([StockReserved(), PaymentSucceeded("pay-1"), StockCommitted()])

    assert saga.status is Status.CONFIRMED
    assert commands == [ReserveStock(), AuthorizePayment(), CommitStock()]
    assert [h.status for h in history] == [Status.PENDING, Status.AWAITING_PAYMENT, Status.CONFIRMED]


def test_a_payment_answered_before_the_stock_confirms_without_awaiting_payment():
    saga, commands, history = run([PaymentSucceeded("pay-1"), StockReserved(), StockCommitted()])

    assert saga == Saga(status=Status.CONFIRMED, payment_id="pay-1")
    assert commands == [ReserveStock(), AuthorizePayment(), CommitStock()]
    assert [h.status for h in history] == [Status.PENDING, Status.CONFIRMED]


def test_a_confirmed_order_is_shipped_then_delivered_by_an_admin():
    ship = decide(confirmed(), ShipRequested(by="admin-1"))
    deliver = decide(ship.saga, DeliverRequested(by="admin-1"))

    assert ship.saga.status is Status.SHIPPED
    assert ship.history == (HistoryEntry(Status.SHIPPED, "shipped", "admin-1"),)
    assert deliver.saga.status is Status.DELIVERED
    assert deliver.history == (HistoryEntry(Status.DELIVERED, "delivered", "admin-1"),)
    assert ship.commands == deliver.commands == ()
