"""Running the saga: every change of an order goes through `Saga.decide`, which asks
`domain.decide` what follows and writes it in the caller's transaction (which holds the order's
row lock): the new saga state, its history entries, the commands to send, the facts about the
order (outbox) and, when it settles, the NOTIFY that wakes its waiters (`waiting`). The participants' replies and the step timer drive it from here.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from order import domain, messages, queries, saga_metrics, shop
from order.models import Order, OrderHistory
from order.waiting import SETTLED, notify_settled
from servicekit.db import transaction
from servicekit.errors import Conflict
from servicekit.outbox import Outbox

log = logging.getLogger(__name__)


def saga_of(order: Order) -> domain.Saga:
    return domain.Saga(
        status=domain.Status(order.status),
        step=domain.Step(order.saga_step) if order.saga_step else None,
        attempts=order.saga_attempts,
        deadline_at=order.saga_deadline_at,
        pending=frozenset(domain.Compensation(p) for p in order.saga_pending or ()),
        cancellation_reason=domain.CancellationReason(order.cancellation_reason)
        if order.cancellation_reason
        else None,
        payment_id=order.payment_id or "",
    )


def set_saga(order: Order, saga: domain.Saga) -> None:
    order.status = saga.status.value
    order.cancellation_reason = saga.cancellation_reason.value if saga.cancellation_reason else None
    order.saga_step = saga.step.value if saga.step else None
    order.saga_attempts = saga.attempts
    order.saga_deadline_at = saga.deadline_at
    order.saga_pending = sorted(p.value for p in saga.pending)
    order.payment_id = saga.payment_id or None
    if saga.step not in (domain.Step.RESERVE_STOCK, domain.Step.AUTHORIZE_PAYMENT):
        # The card token is needed only to (re-)send AuthorizePayment.
        order.payment_token = None


@dataclass(kw_only=True, eq=False, slots=True)
class Saga:
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    policy: domain.Policy
    tick_batch: int = 100

    async def start(self, session: AsyncSession, order: Order, now: datetime) -> None:
        """Add a new order in the session, with its `created` fact and the saga's first command."""
        outcome = domain.place(now, self.policy)
        session.add(order)
        set_saga(order, outcome.saga)
        await session.flush()
        await session.refresh(order, ["created_at", "updated_at"])
        await self.outbox.add(session, messages.created(order))
        await self._record(session, order, None, outcome, now)

    async def decide(
        self,
        session: AsyncSession,
        order: Order,
        event: domain.Event,
        *,
        causation_id: str = "",
        now: datetime | None = None,
    ) -> None:
        """Apply `event` to the locked `order`; CONFLICT (ILLEGAL_TRANSITION) when its status forbids it."""
        now = now or datetime.now(UTC)
        saga = saga_of(order)
        try:
            outcome = domain.decide(saga, event, now, self.policy)
        except domain.IllegalTransition as exc:
            raise Conflict(str(exc), reason="ILLEGAL_TRANSITION") from None
        if outcome.ignored:
            log.info(
                "saga event ignored: %s",
                outcome.ignored,
                extra={"order_id": str(order.id), "status": order.status},
            )
        if outcome.saga == saga and not outcome.commands:
            return
        old_status = order.status
        saga_metrics.observe_decision(session, saga, outcome, event, sent_at=order.saga_sent_at, now=now)
        set_saga(order, outcome.saga)
        await self._record(session, order, old_status, outcome, now, causation_id=causation_id)

    async def handle_reply(
        self, session: AsyncSession, order_id: str, event: domain.Event, event_id: str
    ) -> None:
        """A participant's reply, in the consumer's transaction (with its inbox row)."""
        try:
            order_uuid = uuid.UUID(order_id)
        except ValueError:
            log.warning("reply %s names no valid order id: %r", event_id, order_id)
            return
        order = await queries.lock(session, order_uuid)
        if order is None:
            log.warning("reply %s for unknown order %s ignored", event_id, order_id)
            return
        await self.decide(session, order, event, causation_id=event_id)

    async def resume_due(self) -> int:
        """One timer pass: every saga whose step deadline passed re-sends or compensates.

        Rows locked by a reply being handled are skipped and seen on the next pass; this is
        also how sagas in flight resume after a restart. Returns how many were handled.
        """
        now = datetime.now(UTC)
        async with transaction(self.sessions) as session:
            due = (
                await session.scalars(
                    select(Order)
                    .where(Order.saga_step.is_not(None), Order.saga_deadline_at <= now)
                    .order_by(Order.saga_deadline_at)
                    .limit(self.tick_batch)
                    .with_for_update(skip_locked=True)
                    .options(selectinload(Order.items))
                )
            ).all()
            for order in due:
                order_id = order.id
                log.info(
                    "saga step deadline passed",
                    extra={
                        "order_id": str(order_id),
                        "step": order.saga_step,
                        "attempts": order.saga_attempts,
                    },
                )
                try:
                    async with session.begin_nested():
                        await self.decide(session, order, domain.DeadlinePassed(), now=now)
                except Exception:
                    # One order that cannot go on must not hold up every saga behind it.
                    log.exception("the saga of order %s could not resume; trying again later", order_id)
                    await session.execute(
                        update(Order)
                        .where(Order.id == order_id)
                        .values(saga_deadline_at=now + self.policy.step_deadline)
                    )
        return len(due)

    async def _record(
        self,
        session: AsyncSession,
        order: Order,
        old_status: str | None,
        outcome: domain.Outcome,
        now: datetime,
        *,
        causation_id: str = "",
    ) -> None:
        for cmd in outcome.commands:
            await self.outbox.add(session, messages.command(order, cmd, causation_id=causation_id))
        if outcome.commands:
            order.saga_sent_at = now
        previous = old_status
        for entry in outcome.history:
            session.add(
                OrderHistory(
                    order_id=order.id,
                    status=entry.status.value,
                    reason=entry.reason,
                    changed_by=entry.changed_by or None,
                )
            )
            for message in messages.transition(order, previous, entry, now, causation_id=causation_id):
                await self.outbox.add(session, message)
            saga_metrics.count_transition(session, order, previous, entry)
            previous = entry.status.value
        if any(entry.status.value in SETTLED for entry in outcome.history):
            await notify_settled(session, order.id)
        if any(entry.status is domain.Status.CANCELLED for entry in outcome.history):
            # A cancelled order gives its coupon use back, in the cancelling transaction.
            await shop.give_back_coupon(session, order.id)
        if outcome.history:
            log.info(
                "order status changed",
                extra={"order_id": str(order.id), "old_status": old_status, "new_status": order.status},
            )
