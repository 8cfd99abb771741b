"""The saga's payment commands this service consumes, and the facts it answers with.

Commands arrive on payment.commands through the inbox; replies leave on payment.events through
the outbox, keyed by order id, with `causation_id` set to the command's event id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from google.protobuf import timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncSession

from ecommerce.common.v1 import money_pb2
from ecommerce.events.v1 import payment_events_pb2
from ecommerce.payment.v1 import payment_pb2
from payment import models
from payment.models import Payment, Refund
from servicekit.inbox import Envelope, FollowUp, Handler
from servicekit.kafka import unpack

if TYPE_CHECKING:
    from payment.service import PaymentService

COMMANDS_TOPIC = "payment.commands"
TOPIC = "payment.events"

AUTHORIZE_PAYMENT = "payment.authorize_payment"
REFUND_PAYMENT = "payment.refund_payment"
VOID_PAYMENT = "payment.void_payment"

SUCCEEDED = "payment.succeeded"
FAILED = "payment.failed"
REFUNDED = "payment.refunded"
VOIDED = "payment.voided"

FAILURE_REASON_TO_PROTO = {
    models.DECLINED: payment_pb2.PAYMENT_FAILURE_REASON_DECLINED,
    models.INVALID_TOKEN: payment_pb2.PAYMENT_FAILURE_REASON_INVALID_TOKEN,
    models.PROVIDER_TIMEOUT: payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_TIMEOUT,
    models.PROVIDER_UNAVAILABLE: payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_UNAVAILABLE,
}


@dataclass(frozen=True)
class Cause:
    """The command a reply answers."""

    event_id: str
    correlation_id: str

    @classmethod
    def of(cls, envelope: Envelope) -> Cause:
        return cls(envelope.event_id, envelope.correlation_id)

    def reply_fields(self) -> dict[str, str]:
        return {"causation_id": self.event_id, "correlation_id": self.correlation_id}


def _stamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _money(payment: Payment) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=payment.amount_minor, currency=payment.currency)


def _event(event_type: str, order_id: str, payload: Any, cause: Cause | None) -> dict[str, Any]:
    return {
        "topic": TOPIC,
        "event_type": event_type,
        "aggregate_id": order_id,
        "payload": payload,
        **(cause.reply_fields() if cause is not None else {}),
    }


def succeeded(payment: Payment, cause: Cause | None) -> dict[str, Any]:
    return _event(
        SUCCEEDED,
        str(payment.order_id),
        payment_events_pb2.PaymentSucceeded(
            payment_id=str(payment.id),
            order_id=str(payment.order_id),
            account_id=str(payment.account_id),
            amount=_money(payment),
            provider=payment.provider,
            provider_reference=payment.provider_reference or "",
            succeeded_at=_stamp(payment.updated_at),
        ),
        cause,
    )


def failed(payment: Payment, cause: Cause | None) -> dict[str, Any]:
    reason = payment.failure_reason or models.PROVIDER_UNAVAILABLE
    return _event(
        FAILED,
        str(payment.order_id),
        payment_events_pb2.PaymentFailed(
            payment_id=str(payment.id),
            order_id=str(payment.order_id),
            account_id=str(payment.account_id),
            amount=_money(payment),
            reason=FAILURE_REASON_TO_PROTO[reason],
            message=payment.failure_message or "",
            retryable=reason in models.RETRYABLE_REASONS,
            failed_at=_stamp(payment.updated_at),
        ),
        cause,
    )


def refunded(payment: Payment, refund: Refund, cause: Cause | None) -> dict[str, Any]:
    return _event(
        REFUNDED,
        str(payment.order_id),
        payment_events_pb2.PaymentRefunded(
            payment_id=str(payment.id),
            order_id=str(payment.order_id),
            account_id=str(payment.account_id),
            amount=money_pb2.Money(amount_minor=refund.amount_minor, currency=refund.currency),
            reason=refund.reason,
            refunded_by=str(refund.refunded_by) if refund.refunded_by else "",
            refunded_at=_stamp(refund.created_at),
        ),
        cause,
    )


def voided(order_id: str, payment: Payment | None, at: datetime, cause: Cause | None) -> dict[str, Any]:
    payload = payment_events_pb2.PaymentVoided(order_id=order_id, voided_at=_stamp(at))
    if payment is not None:
        payload.payment_id = str(payment.id)
        payload.account_id = str(payment.account_id)
        payload.amount.CopyFrom(_money(payment))
    return _event(VOIDED, order_id, payload, cause)


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

    return {AUTHORIZE_PAYMENT: authorize, REFUND_PAYMENT: refund, VOID_PAYMENT: void}
