"""Running the saga: every change of an order goes through `Saga.decide`, which asks
`domain.decide` what follows and writes it in the caller's transaction (which holds the order's
row lock): the new saga state, its history entries, the commands to send, the facts about the
order (outbox) and, when it settles, the NOTIFY that wakes its waiters (`waiting`). The
participants' replies and the step timer drive it from here.

The hot path is lean: a reply locks only the saga's columns of its order (`lock`, no items, no
history, no address), writes them back with one UPDATE and the history with one INSERT. The items
and the address are read only for what needs them: a ReserveStock (its lines) and the status
changes into a milestone (confirmed, cancelled, shipped, delivered) that carry them for e-mails.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from order import domain, messages, saga_metrics, shop
from order.models import Order
from order.waiting import SETTLED, notify_settled
from servicekit.db import driver, transaction
from servicekit.errors import Conflict
from servicekit.outbox import Outbox

log = logging.getLogger(__name__)


class SagaRow(NamedTuple):
    """What the saga reads of an order to decide and to send its commands."""

    id: uuid.UUID
    account_id: uuid.UUID | None
    status: str
    cancellation_reason: str | None
    currency: str
    total_minor: int
    payment_token: str | None
    payment_id: str | None
    saga_step: str | None
    saga_attempts: int
    saga_deadline_at: datetime | None
    saga_sent_at: datetime | None
    saga_pending: list[str]


SAGA_COLUMNS = tuple(getattr(Order, name) for name in SagaRow._fields)

# The hot statements of a saga's step (every participant's reply runs them), in plain SQL on the
# session's asyncpg connection (`servicekit.db.driver`), sparing each SQLAlchemy's handling (about
# a third of its cost). The lock is compiled once from SAGA_COLUMNS, so its row is a SagaRow.
_LOCK = str(
    select(*SAGA_COLUMNS)
    .where(Order.id == bindparam("id"))
    .with_for_update()
    .compile(dialect=asyncpg_dialect())
)
# The new saga state; the card token cleared when $9, the time a command went out kept unless $10.
_UPDATE = (
    "UPDATE orders SET status = $2, cancellation_reason = $3, saga_step = $4, saga_attempts = $5, "
    "saga_deadline_at = $6, saga_pending = $7, payment_id = $8, "
    "payment_token = CASE WHEN $9 THEN NULL ELSE payment_token END, "
    "saga_sent_at = COALESCE($10, saga_sent_at), updated_at = now() WHERE id = $1"
)
_HISTORY = (
    "INSERT INTO order_history (order_id, status, reason, changed_by) "
    "SELECT $1, status, reason, changed_by "
    "FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS entry(status, reason, changed_by, n) "
    "ORDER BY n"
)


async def lock(session: AsyncSession, order_id: uuid.UUID) -> SagaRow | None:
    """The saga columns of the order, row-locked for the rest of the session's transaction."""
    record = await (await driver(session)).fetchrow(_LOCK, order_id)
    return None if record is None else SagaRow(*record.values())


def saga_of(order: SagaRow) -> domain.Saga:
    # One column holds what the current step waits for: compensations or forward commands.
    waiting = order.saga_pending or ()
    return domain.Saga(
        status=domain.Status(order.status),
        step=domain.Step(order.saga_step) if order.saga_step else None,
        attempts=order.saga_attempts,
        deadline_at=order.saga_deadline_at,
        pending=frozenset(domain.Compensation(p) for p in waiting if p in domain.Compensation.__members__),
        awaiting=frozenset(domain.Part(p) for p in waiting if p in domain.Part.__members__),
        cancellation_reason=domain.CancellationReason(order.cancellation_reason)
        if order.cancellation_reason
        else None,
        payment_id=order.payment_id or "",
    )


def saga_columns(saga: domain.Saga) -> dict[str, Any]:
    """The stored form of a saga state."""
    columns: dict[str, Any] = {
        "status": saga.status.value,
        "cancellation_reason": saga.cancellation_reason.value if saga.cancellation_reason else None,
        "saga_step": saga.step.value if saga.step else None,
        "saga_attempts": saga.attempts,
        "saga_deadline_at": saga.deadline_at,
        "saga_pending": sorted([*(p.value for p in saga.pending), *(p.value for p in saga.awaiting)]),
        "payment_id": saga.payment_id or None,
    }
    if domain.Part.AUTHORIZE_PAYMENT not in saga.awaiting:
        # The card token is needed only to (re-)send AuthorizePayment.
        columns["payment_token"] = None
    return columns


@dataclass(kw_only=True, eq=False, slots=True)
class Saga:
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    policy: domain.Policy
    tick_batch: int = 100

    async def start(self, session: AsyncSession, order: Order, now: datetime) -> None:
        """Add a new order (with its items) in the session, with its status change into PENDING
        (which carries its details: there is no separate `order.created`) and the saga's first
        commands."""
        outcome = domain.place(now, self.policy)
        session.add(order)
        for name, value in saga_columns(outcome.saga).items():
            if name != "payment_token":  # AuthorizePayment is about to be sent with it
                setattr(order, name, value)
        order.saga_sent_at = now
        await session.flush()
        await self._record(session, order, None, outcome, now)

    async def decide(
        self,
        session: AsyncSession,
        row: SagaRow,
        event: domain.Event,
        *,
        causation_id: str = "",
        now: datetime | None = None,
    ) -> None:
        """Apply `event` to the order whose saga columns `row` holds (locked by `lock`); CONFLICT
        (ILLEGAL_TRANSITION) when its status forbids it."""
        now = now or datetime.now(UTC)
        saga = saga_of(row)
        try:
            outcome = domain.decide(saga, event, now, self.policy)
        except domain.IllegalTransition as exc:
            raise Conflict(str(exc), reason="ILLEGAL_TRANSITION") from None
        if outcome.ignored:
            log.info(
                "saga event ignored: %s",
                outcome.ignored,
                extra={"order_id": str(row.id), "status": row.status},
            )
        if outcome.saga == saga and not outcome.commands:
            return
        saga_metrics.observe_decision(session, saga, outcome, event, sent_at=row.saga_sent_at, now=now)
        columns = saga_columns(outcome.saga)
        if outcome.commands:
            columns["saga_sent_at"] = now
        await (await driver(session)).execute(
            _UPDATE,
            row.id,
            columns["status"],
            columns["cancellation_reason"],
            columns["saga_step"],
            columns["saga_attempts"],
            columns["saga_deadline_at"],
            columns["saga_pending"],
            columns["payment_id"],
            "payment_token" in columns,
            columns.get("saga_sent_at"),
        )
        order = await self._facts(session, row, columns, outcome)
        await self._record(session, order, row.status, outcome, now, causation_id=causation_id)

    async def handle_reply(
        self, session: AsyncSession, order_id: str, event: domain.Event, event_id: str
    ) -> None:
        """A participant's reply, in the consumer's transaction (with its inbox row)."""
        try:
            order_uuid = uuid.UUID(order_id)
        except ValueError:
            log.warning("reply %s names no valid order id: %r", event_id, order_id)
            return
        row = await lock(session, order_uuid)
        if row is None:
            log.warning("reply %s for unknown order %s ignored", event_id, order_id)
            return
        await self.decide(session, row, event, causation_id=event_id)

    async def resume_due(self) -> int:
        """One timer pass: every saga whose step deadline passed re-sends or compensates.

        Rows locked by a reply being handled are skipped and seen on the next pass; this is
        also how sagas in flight resume after a restart. Returns how many were handled.
        """
        now = datetime.now(UTC)
        async with transaction(self.sessions) as session:
            due = (
                await session.execute(
                    select(*SAGA_COLUMNS)
                    .where(Order.saga_step.is_not(None), Order.saga_deadline_at <= now)
                    .order_by(Order.saga_deadline_at)
                    .limit(self.tick_batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in map(SagaRow._make, due):
                log.info(
                    "saga step deadline passed",
                    extra={"order_id": str(row.id), "step": row.saga_step, "attempts": row.saga_attempts},
                )
                try:
                    async with session.begin_nested():
                        await self.decide(session, row, domain.DeadlinePassed(), now=now)
                except Exception:
                    # One order that cannot go on must not hold up every saga behind it.
                    log.exception("the saga of order %s could not resume; trying again later", row.id)
                    await session.execute(
                        update(Order)
                        .where(Order.id == row.id)
                        .values(saga_deadline_at=now + self.policy.step_deadline)
                        .execution_options(synchronize_session=False)
                    )
        return len(due)

    async def _facts(
        self, session: AsyncSession, row: SagaRow, columns: dict[str, Any], outcome: domain.Outcome
    ) -> Order:
        """The order as its messages need it: read whole (items and all) only for a ReserveStock
        or a status change with details; otherwise built from the locked row, never added to the
        session."""
        if any(isinstance(c, domain.ReserveStock) for c in outcome.commands) or any(
            entry.status in messages.WITH_DETAILS for entry in outcome.history
        ):
            order = await session.scalar(
                select(Order)
                .where(Order.id == row.id)
                .options(selectinload(Order.items))
                .execution_options(populate_existing=True)
            )
            assert order is not None  # locked by this transaction
            return order
        values = {**row._asdict(), **columns}
        values["payment_token"] = row.payment_token  # an AuthorizePayment re-sent now still needs it
        return Order(**values)

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
        if outcome.history:
            await (await driver(session)).execute(
                _HISTORY,
                order.id,
                [entry.status.value for entry in outcome.history],
                [entry.reason for entry in outcome.history],
                [entry.changed_by or None for entry in outcome.history],
            )
        previous = old_status
        for entry in outcome.history:
            await self.outbox.add(
                session, messages.transition(order, previous, entry, now, causation_id=causation_id)
            )
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
