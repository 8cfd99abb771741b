"""The payment service's use cases, one surface over the rooms that hold them: reading payments
(`reads`), the saga's commands and their replies (`commands`), and here the admin refund, the
token check and the provider's circuit breaker."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment import models
from payment.checks import MAX_REASON_LENGTH, token_problem
from payment.commands import SagaCommands
from payment.models import Payment
from payment.provider import GuardedProvider
from payment.reads import PaymentReads
from servicekit.auth import require_admin, require_caller
from servicekit.context import Caller
from servicekit.errors import Conflict, InvalidArgument, NotFound, Unavailable, Violations
from servicekit.ids import parse_canonical_id
from servicekit.inbox import FollowUp
from servicekit.messages import Cause
from servicekit.outbox import Outbox
from servicekit.resilience import CircuitBreaker
from servicekit.text import CONTROL_CHARACTERS, has_control_characters


class PaymentService:
    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], outbox: Outbox, provider: GuardedProvider
    ) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.provider = provider
        self.reads = PaymentReads(sessions=sessions)
        self.commands = SagaCommands(sessions=sessions, outbox=outbox, provider=provider)

    @property
    def breaker(self) -> CircuitBreaker:
        """The provider's circuit breaker, for GetBreakerState and metrics."""
        return self.provider.breaker

    async def get_payment(self, caller: Caller | None, *, payment_id: str) -> Payment:
        return await self.reads.get_payment(caller, payment_id=payment_id)

    async def list_payments(self, caller: Caller | None, *, order_id: str) -> list[Payment]:
        return await self.reads.list_payments(caller, order_id=order_id)

    async def batch_by_order(self, caller: Caller | None, *, order_ids: Sequence[str]) -> list[Payment]:
        return await self.reads.batch_by_order(caller, order_ids=order_ids)

    def validate_token(self, caller: Caller | None, *, token: str) -> str | None:
        """None when the provider accepts the token, else why not. Charges nothing."""
        require_caller(caller)
        if (problem := token_problem(token)) is not None:
            raise InvalidArgument.field("payment_token", problem)
        return self.provider.check_token(token)

    def breaker_state(self, caller: Caller | None) -> CircuitBreaker:
        require_admin(caller)
        return self.breaker

    async def refund_payment(self, caller: Caller | None, *, payment_id: str, reason: str) -> Payment:
        admin = require_admin(caller)
        violations = Violations()
        try:
            pid = parse_canonical_id(payment_id, "payment_id")
        except InvalidArgument as exc:
            violations.items.extend(exc.violations)
        violations.check(
            len(reason) <= MAX_REASON_LENGTH, "reason", f"must be at most {MAX_REASON_LENGTH} characters"
        )
        violations.check(not has_control_characters(reason), "reason", CONTROL_CHARACTERS)
        violations.raise_if_any()
        async with self.sessions() as session:
            payment = await session.get(Payment, pid)
        if payment is None:
            raise NotFound("payment not found")
        if payment.status == models.REFUNDED:
            return payment
        if payment.status != models.SUCCEEDED:
            raise Conflict(f"only a SUCCEEDED payment can be refunded; this one is {payment.status}")
        current, outcome = await self.commands.complete_refund(
            payment, reason=reason.strip(), refunded_by=uuid.UUID(admin.account_id), cause=None
        )
        if not outcome.succeeded:
            if outcome.retryable:
                raise Unavailable("the payment provider is unavailable; try again later")
            raise Conflict(f"the payment provider refused the refund: {outcome.message}")
        return current

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
        return await self.commands.authorize_order(
            session,
            order_id=order_id,
            account_id=account_id,
            amount_minor=amount_minor,
            currency=currency,
            token=token,
            idempotency_key=idempotency_key,
            cause=cause,
        )

    async def refund_order(
        self, session: AsyncSession, *, order_id: str, reason: str, cause: Cause
    ) -> FollowUp | None:
        return await self.commands.refund_order(session, order_id=order_id, reason=reason, cause=cause)

    async def void_order(
        self, session: AsyncSession, *, order_id: str, reason: str, cause: Cause
    ) -> FollowUp | None:
        return await self.commands.void_order(session, order_id=order_id, reason=reason, cause=cause)
