"""The saga's commands to the payment service: AuthorizePayment, RefundPayment and VoidPayment,
and the replies that answer them on `payment.events`.

No database transaction is held across a provider call. A command is handled in two steps: in the
inbox transaction the payment is recorded (PENDING, with its idempotency key) or its known
outcome is re-published; then, after that commit, the provider is called and the outcome and
its event are written in a second transaction. A crash between the two leaves the payment
PENDING; the saga re-sends the command on its deadline (a new event id, so the inbox lets it in),
the handler finds the PENDING payment by order id and resumes it with the same idempotency key,
so the provider answers with the charge it already made instead of charging again.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment import messages, models
from payment.checks import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_REASON_LENGTH,
    PoisonCommand,
    clean_reason,
    command_uuid,
    token_problem,
)
from payment.models import Payment, Refund, VoidedOrder
from payment.provider import GuardedProvider, Outcome
from servicekit.db import transaction
from servicekit.inbox import FollowUp
from servicekit.messages import Cause, Message
from servicekit.metrics import PAYMENT_OUTCOMES
from servicekit.money import is_currency
from servicekit.outbox import Outbox
from servicekit.text import has_control_characters

log = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False, slots=True)
class SagaCommands:
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    provider: GuardedProvider

    async def authorize_order(
        self,
        session: AsyncSession,
        *,
        order_id: str,
        account_id: str,
        amount_minor: int,
        currency: str,
        token: str,
        idempotency_key: str,
        cause: Cause,
    ) -> FollowUp | None:
        """Idempotent by order id: one payment per order, and after a success never another call."""
        oid = command_uuid(order_id, "order_id")
        aid = command_uuid(account_id, "account_id")
        if amount_minor <= 0 or not is_currency(currency):
            raise PoisonCommand(f"AuthorizePayment for order {oid} has an invalid amount")
        key = idempotency_key.strip() or f"order-{oid}"
        if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or has_control_characters(key):
            raise PoisonCommand(f"AuthorizePayment for order {oid} has an invalid idempotency key")

        voided = await session.get(VoidedOrder, oid)
        payment = await self._lock_by_order(session, oid)
        if payment is None:
            if voided is not None:
                await self._emit(session, messages.voided(str(oid), None, voided.created_at, cause))
                return None
            problem = token_problem(token)
            payment = Payment(
                id=uuid.uuid4(),
                order_id=oid,
                account_id=aid,
                amount_minor=amount_minor,
                currency=currency,
                status=models.PENDING if problem is None else models.FAILED,
                provider=self.provider.name,
                idempotency_key=key,
                failure_reason=None if problem is None else models.INVALID_TOKEN,
                failure_message=None if problem is None else f"payment token {problem}",
                attempts=0,
            )
            session.add(payment)
            try:
                await session.flush()
            except IntegrityError as exc:
                if "uq_payments_idempotency_key" in str(exc.orig):
                    raise PoisonCommand(f"idempotency key of order {oid} belongs to another order") from None
                raise  # a concurrent delivery for the same order: retried, it finds that payment
            if problem is not None:
                await self._reply(session, payment, cause)
                return None
            return self._authorization(payment, token, cause)

        if (payment.amount_minor, payment.currency) != (amount_minor, currency):
            log.warning(
                "AuthorizePayment for order %s differs from its payment's amount; the first stands", oid
            )
        if voided is not None and payment.status in (models.PENDING, models.FAILED, models.VOIDED):
            await self._emit(session, messages.voided(str(oid), payment, voided.created_at, cause))
            return None
        if payment.status == models.PENDING:
            log.info("resuming the PENDING payment %s of order %s", payment.id, oid)
            return self._authorization(payment, token, cause)
        if payment.status == models.FAILED and payment.failure_reason in models.RETRYABLE_REASONS:
            payment.status = models.PENDING
            payment.failure_reason = None
            payment.failure_message = None
            await session.flush()
            return self._authorization(payment, token, cause)
        await self._reply(session, payment, cause)
        return None

    def _authorization(self, payment: Payment, token: str, cause: Cause) -> FollowUp:
        payment_id = payment.id
        amount_minor, currency, key = payment.amount_minor, payment.currency, payment.idempotency_key

        async def call_provider_then_record() -> None:
            outcome = await self.provider.authorize(
                token=token, amount_minor=amount_minor, currency=currency, idempotency_key=key
            )
            async with transaction(self.sessions) as session:
                current = await session.get(Payment, payment_id, with_for_update=True)
                assert current is not None
                if current.status == models.PENDING:
                    self._record_outcome(current, outcome)
                    await session.flush()
                # Otherwise another delivery recorded it first (or it was voided): answer with that.
                await self._reply(session, current, cause)

        return call_provider_then_record

    @staticmethod
    def _record_outcome(payment: Payment, outcome: Outcome) -> None:
        payment.attempts += outcome.attempts
        if outcome.succeeded:
            payment.status = models.SUCCEEDED
            payment.provider_reference = outcome.reference
            PAYMENT_OUTCOMES.labels(outcome="succeeded").inc()
        else:
            payment.status = models.FAILED
            PAYMENT_OUTCOMES.labels(
                outcome="failed" if outcome.failure_reason in models.RETRYABLE_REASONS else "declined"
            ).inc()
            payment.failure_reason = outcome.failure_reason
            payment.failure_message = outcome.message[:MAX_REASON_LENGTH]
            log.info(
                "payment %s of order %s failed: %s (%s)",
                payment.id,
                payment.order_id,
                outcome.failure_reason,
                outcome.message,
            )

    async def refund_order(
        self, session: AsyncSession, *, order_id: str, reason: str, cause: Cause
    ) -> FollowUp | None:
        oid = command_uuid(order_id, "order_id")
        payment = await session.scalar(select(Payment).where(Payment.order_id == oid))
        if payment is None or payment.status not in (models.SUCCEEDED, models.REFUNDED):
            log.warning(
                "RefundPayment for order %s: nothing to refund (%s)",
                oid,
                payment.status if payment else "no payment",
            )
            return None
        if payment.status == models.REFUNDED:
            await self._reply_refunded(session, payment, cause)
            return None

        async def call_provider_then_record() -> None:
            await self.complete_refund(payment, reason=clean_reason(reason), refunded_by=None, cause=cause)

        return call_provider_then_record

    async def complete_refund(
        self, payment: Payment, *, reason: str, refunded_by: uuid.UUID | None, cause: Cause | None
    ) -> tuple[Payment, Outcome]:
        outcome = await self.provider.refund(
            reference=payment.provider_reference or "",
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            idempotency_key=payment.idempotency_key,
        )
        if not outcome.succeeded:
            # Not answered: the saga re-sends RefundPayment on its deadline.
            log.warning(
                "refund of payment %s failed: %s (%s)", payment.id, outcome.failure_reason, outcome.message
            )
            return payment, outcome
        async with transaction(self.sessions) as session:
            current = await session.get(Payment, payment.id, with_for_update=True)
            assert current is not None
            if current.status == models.SUCCEEDED:
                current.status = models.REFUNDED
                PAYMENT_OUTCOMES.labels(outcome="refunded").inc()
                session.add(
                    Refund(
                        id=uuid.uuid4(),
                        payment_id=current.id,
                        amount_minor=current.amount_minor,
                        currency=current.currency,
                        reason=reason,
                        refunded_by=refunded_by,
                        provider_reference=outcome.reference,
                    )
                )
                await session.flush()
                await self._reply_refunded(session, current, cause)
            elif current.status == models.REFUNDED and cause is not None:
                await self._reply_refunded(session, current, cause)
        return current, outcome

    async def void_order(
        self, session: AsyncSession, *, order_id: str, reason: str, cause: Cause
    ) -> FollowUp | None:
        oid = command_uuid(order_id, "order_id")
        # Remembered first, so that an AuthorizePayment arriving after this never charges.
        await session.execute(
            insert(VoidedOrder).values(order_id=oid, reason=clean_reason(reason)).on_conflict_do_nothing()
        )
        marker = await session.get(VoidedOrder, oid)
        assert marker is not None
        payment = await self._lock_by_order(session, oid)
        if payment is None:
            await self._emit(session, messages.voided(str(oid), None, marker.created_at, cause))
            return None
        if payment.status not in (models.PENDING, models.SUCCEEDED):
            # Nothing was charged (FAILED), or the money is back already (VOIDED, REFUNDED).
            at = payment.updated_at if payment.status == models.VOIDED else marker.created_at
            await self._emit(session, messages.voided(str(oid), payment, at, cause))
            return None
        payment_id, reference, key = payment.id, payment.provider_reference, payment.idempotency_key

        async def call_provider_then_record() -> None:
            outcome = await self.provider.void(reference=reference, idempotency_key=key)
            if not outcome.succeeded:
                log.warning(
                    "void of payment %s failed: %s (%s)", payment_id, outcome.failure_reason, outcome.message
                )
                return
            async with transaction(self.sessions) as tx:
                current = await tx.get(Payment, payment_id, with_for_update=True)
                assert current is not None
                if current.status in (models.PENDING, models.SUCCEEDED):
                    current.status = models.VOIDED
                    await tx.flush()
                await self._emit(tx, messages.voided(str(oid), current, current.updated_at, cause))

        return call_provider_then_record

    async def _lock_by_order(self, session: AsyncSession, order_id: uuid.UUID) -> Payment | None:
        return await session.scalar(select(Payment).where(Payment.order_id == order_id).with_for_update())

    async def _reply(self, session: AsyncSession, payment: Payment, cause: Cause) -> None:
        """Answer an AuthorizePayment with what the payment came to (again, for a repeated one)."""
        if payment.status in (models.SUCCEEDED, models.REFUNDED):
            await self._emit(session, messages.succeeded(payment, cause))
        elif payment.status == models.FAILED:
            await self._emit(session, messages.failed(payment, cause))
        elif payment.status == models.VOIDED:
            await self._emit(
                session, messages.voided(str(payment.order_id), payment, payment.updated_at, cause)
            )

    async def _reply_refunded(self, session: AsyncSession, payment: Payment, cause: Cause | None) -> None:
        refund = await session.scalar(select(Refund).where(Refund.payment_id == payment.id))
        assert refund is not None
        await self._emit(session, messages.refunded(payment, refund, cause))

    async def _emit(self, session: AsyncSession, message: Message) -> None:
        await self.outbox.add(session, message)
