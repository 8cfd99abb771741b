"""What the saga reports to the metrics `servicekit.metrics` defines: step durations and retries,
orders by status and the outcomes of sagas. Counts move only once the change has committed."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order import domain
from order.models import Order
from servicekit import metrics
from servicekit.db import after_commit

_COMMAND_STEPS: dict[type, str] = {
    domain.ReserveStock: "reserve_stock",
    domain.AuthorizePayment: "authorize_payment",
    domain.CommitStock: "commit_stock",
    domain.ReleaseStock: "release_stock",
    domain.VoidPayment: "void_payment",
    domain.RefundPayment: "refund_payment",
}
_COMPENSATION_STEPS = {
    domain.Compensation.RELEASE_STOCK: "release_stock",
    domain.Compensation.VOID_PAYMENT: "void_payment",
    domain.Compensation.REFUND_PAYMENT: "refund_payment",
}


_PAYMENT_REPLIES = (
    domain.PaymentSucceeded,
    domain.PaymentFailed,
    domain.PaymentVoided,
    domain.PaymentRefunded,
)


def _reply_outcome(event: domain.Event) -> str:
    """What a reply said, as the step-duration metric's outcome label."""
    match event:
        case domain.StockRejected():
            return "rejected"
        case domain.ReservationExpired():
            return "expired"
        case domain.PaymentFailed(retryable=False):
            return "declined"
        case domain.PaymentFailed():
            return "unavailable"
    return "ok"


def _answered_step(saga: domain.Saga, outcome: domain.Outcome, event: domain.Event) -> tuple[str, str] | None:
    """(step, outcome) when this event answered the command the saga was waiting for."""
    if outcome.ignored or isinstance(
        event, domain.DeadlinePassed | domain.CancelRequested | domain.ShipRequested | domain.DeliverRequested
    ):
        return None
    if saga.step is domain.Step.COMPENSATE:
        answered = saga.pending - outcome.saga.pending
        return (_COMPENSATION_STEPS[next(iter(answered))], "ok") if len(answered) == 1 else None
    if saga.step is None:
        return None
    if isinstance(event, domain.StockReleased) and saga.step is domain.Step.COMMIT_STOCK:
        return saga.step.value.lower(), "released"
    if saga.step is domain.Step.RESERVE_AND_AUTHORIZE:
        # The two commands of the step, each timed on its own.
        part = "authorize_payment" if isinstance(event, _PAYMENT_REPLIES) else "reserve_stock"
        return part, _reply_outcome(event)
    return saga.step.value.lower(), _reply_outcome(event)


def _observe_step(step: str, outcome: str, elapsed: float) -> None:
    metrics.SAGA_STEP_DURATION.labels(step, outcome).observe(elapsed)


def _count_retry(step: str) -> None:
    metrics.SAGA_STEP_RETRIES.labels(step=step).inc()


def _count_transition(order: Order, old_status: str | None, entry: domain.HistoryEntry) -> None:
    if old_status is not None:
        metrics.ORDERS_BY_STATUS.labels(status=old_status).dec()
    metrics.ORDERS_BY_STATUS.labels(status=entry.status.value).inc()
    if entry.status is domain.Status.CONFIRMED:
        metrics.SAGA_OUTCOMES.labels(outcome="confirmed").inc()
    elif entry.status is domain.Status.CANCELLED and order.cancellation_reason:
        metrics.SAGA_OUTCOMES.labels(outcome=order.cancellation_reason.lower()).inc()


def observe_decision(
    session: AsyncSession,
    saga: domain.Saga,
    outcome: domain.Outcome,
    event: domain.Event,
    *,
    sent_at: datetime | None,
    now: datetime,
) -> None:
    """After the commit: how long the answered step took, and the commands a deadline re-sent."""
    answered = _answered_step(saga, outcome, event)
    if answered is not None and sent_at is not None:
        elapsed = max(0.0, (now - sent_at).total_seconds())
        after_commit(session, partial(_observe_step, *answered, elapsed))
    if isinstance(event, domain.DeadlinePassed) and not outcome.history:
        for cmd in outcome.commands:
            after_commit(session, partial(_count_retry, _COMMAND_STEPS[type(cmd)]))


def count_transition(
    session: AsyncSession, order: Order, old_status: str | None, entry: domain.HistoryEntry
) -> None:
    """After the commit: the order moves from its old status's count to the new one's."""
    after_commit(session, partial(_count_transition, order, old_status, entry))


async def refresh_gauges(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Count the orders by status and find the oldest saga still under way, for the gauges."""
    async with sessions() as session:
        counts = dict(
            (await session.execute(select(Order.status, func.count()).group_by(Order.status))).all()
        )
        oldest = await session.scalar(
            select(func.min(Order.created_at)).where(
                Order.status.in_((domain.Status.PENDING.value, domain.Status.AWAITING_PAYMENT.value))
            )
        )
    for status in domain.Status:
        metrics.ORDERS_BY_STATUS.labels(status=status.value).set(counts.get(status.value, 0))
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
    metrics.SAGA_OLDEST_IN_FLIGHT.set(max(0.0, age))
