"""Sagas in each state and the events that move them, decided at a fixed clock and policy: what the
order domain's tests start from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from order import domain
from order.domain import (
    AuthorizePayment,
    CancelRequested,
    DeliverRequested,
    HistoryEntry,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    PaymentVoided,
    ReservationExpired,
    ReserveStock,
    Saga,
    ShipRequested,
    Status,
    StockCommitted,
    StockRejected,
    StockReleased,
    StockReserved,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = domain.Policy(
    step_deadline=timedelta(seconds=10), retry_budget=2, payment_retry_delay=timedelta(seconds=1)
)
LATER = NOW + timedelta(seconds=11)

REPLIES = [
    StockReserved(),
    StockRejected("p1 (insufficient stock)"),
    StockReleased(),
    StockCommitted(),
    ReservationExpired(),
    PaymentSucceeded("pay-1"),
    PaymentFailed(retryable=False, detail="declined"),
    PaymentFailed(retryable=True, detail="provider unavailable"),
    PaymentVoided("pay-1"),
    PaymentRefunded("pay-1"),
]
MANUAL = [CancelRequested(by="owner"), ShipRequested(by="admin"), DeliverRequested(by="admin")]


def decide(saga: Saga, event: domain.Event, now: datetime = NOW) -> domain.Outcome:
    return domain.decide(saga, event, now, POLICY)


def pending() -> Saga:
    """Placed: the reservation and the authorisation both unanswered."""
    return domain.place(NOW, POLICY).saga


def awaiting_payment() -> Saga:
    """The stock reserved, the payment still unanswered."""
    return decide(pending(), StockReserved()).saga


def paid() -> Saga:
    """The payment authorised, the reservation still unanswered (still PENDING)."""
    return decide(pending(), PaymentSucceeded("pay-1")).saga


def committing() -> Saga:
    return decide(awaiting_payment(), PaymentSucceeded("pay-1")).saga


def confirmed() -> Saga:
    return decide(committing(), StockCommitted()).saga


def shipped() -> Saga:
    return decide(confirmed(), ShipRequested(by="admin")).saga


def delivered() -> Saga:
    return decide(shipped(), DeliverRequested(by="admin")).saga


def cancelled_from(saga: Saga) -> Saga:
    return decide(saga, CancelRequested(by="owner")).saga


def settled_cancelled(saga: Saga) -> Saga:
    """Cancelled with every compensation answered."""
    saga = cancelled_from(saga)
    for event in (StockReleased(), PaymentVoided("pay-1"), PaymentRefunded("pay-1")):
        saga = decide(saga, event).saga
    assert saga.step is None
    return saga


def settled_out_of_stock() -> Saga:
    """Cancelled as OUT_OF_STOCK, its authorisation voided."""
    saga = decide(decide(pending(), StockRejected()).saga, PaymentVoided("")).saga
    assert saga.step is None
    return saga


def run(events: list[domain.Event], start: Saga | None = None) -> tuple[Saga, list, list]:
    """Feed a sequence of events; returns the final state, every command and history entry."""
    saga = start or pending()
    commands: list = [ReserveStock(), AuthorizePayment()] if start is None else []
    history: list = [HistoryEntry(Status.PENDING, "order placed")] if start is None else []
    for event in events:
        outcome = decide(saga, event)
        saga = outcome.saga
        commands.extend(outcome.commands)
        history.extend(outcome.history)
    return saga, commands, history


ALL_STATES = {
    "pending": pending,
    "awaiting_payment": awaiting_payment,
    "paid": paid,
    "committing": committing,
    "confirmed": confirmed,
    "shipped": shipped,
    "delivered": delivered,
    "cancelled_compensating": lambda: cancelled_from(awaiting_payment()),
    "cancelled_settled": lambda: settled_cancelled(confirmed()),
    "out_of_stock": lambda: settled_out_of_stock(),
}
