"""What the payment service consumes: the saga's commands on `payment.commands`.

Each handler runs in the inbox transaction and may return the provider call to make after it
commits.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from ecommerce.events.v1 import payment_events_pb2
from payment.service import PaymentService
from servicekit.inbox import Envelope, FollowUp, Handler
from servicekit.kafka import unpack
from servicekit.messages import Cause
from servicekit.topics import PAYMENT_COMMANDS, PaymentCommand

TOPICS = (PAYMENT_COMMANDS,)
# Every command may call the provider after its transaction: each is handled, follow-up and all,
# before the next of its partition.
FOLLOW_UP_TYPES = frozenset(PaymentCommand)


def handlers(service: PaymentService) -> dict[str, Handler]:
    """The payment.commands consumer's handlers. Each runs in the inbox transaction and may
    return the provider call to make after it commits."""

    async def authorize(session: AsyncSession, envelope: Envelope) -> FollowUp | None:
        command = cast(
            payment_events_pb2.AuthorizePayment, unpack(envelope, payment_events_pb2.AuthorizePayment)
        )
        return await service.authorize_order(
            session,
            order_id=command.order_id,
            account_id=command.account_id,
            amount_minor=command.amount.amount_minor,
            currency=command.amount.currency,
            token=command.payment_token,
            idempotency_key=command.idempotency_key,
            cause=Cause.of(envelope),
        )

    async def refund(session: AsyncSession, envelope: Envelope) -> FollowUp | None:
        command = cast(payment_events_pb2.RefundPayment, unpack(envelope, payment_events_pb2.RefundPayment))
        return await service.refund_order(
            session, order_id=command.order_id, reason=command.reason, cause=Cause.of(envelope)
        )

    async def void(session: AsyncSession, envelope: Envelope) -> FollowUp | None:
        command = cast(payment_events_pb2.VoidPayment, unpack(envelope, payment_events_pb2.VoidPayment))
        return await service.void_order(
            session, order_id=command.order_id, reason=command.reason, cause=Cause.of(envelope)
        )

    return {
        PaymentCommand.AUTHORIZE_PAYMENT: authorize,
        PaymentCommand.REFUND_PAYMENT: refund,
        PaymentCommand.VOID_PAYMENT: void,
    }
