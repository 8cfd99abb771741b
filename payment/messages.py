"""What the payment service publishes on `payment.events`: the facts it answers the saga with.

Each reply is keyed by order id and caused by the command it answers (`servicekit.messages.Cause`).
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message as Payload

from ecommerce.common.v1 import money_pb2
from ecommerce.events.v1 import payment_events_pb2
from ecommerce.payment.v1 import payment_pb2
from payment import models
from payment.models import Payment, Refund
from servicekit.messages import NO_CAUSE, Cause, Message
from servicekit.topics import PAYMENT_EVENTS, PaymentEvent

FAILURE_REASON_TO_PROTO = {
    models.DECLINED: payment_pb2.PAYMENT_FAILURE_REASON_DECLINED,
    models.INVALID_TOKEN: payment_pb2.PAYMENT_FAILURE_REASON_INVALID_TOKEN,
    models.PROVIDER_TIMEOUT: payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_TIMEOUT,
    models.PROVIDER_UNAVAILABLE: payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_UNAVAILABLE,
}


def _stamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _money(payment: Payment) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=payment.amount_minor, currency=payment.currency)


def _event(event_type: PaymentEvent, order_id: str, payload: Payload, cause: Cause | None) -> Message:
    return Message(PAYMENT_EVENTS, event_type, order_id, payload, cause or NO_CAUSE)


def succeeded(payment: Payment, cause: Cause | None) -> Message:
    return _event(
        PaymentEvent.SUCCEEDED,
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


def failed(payment: Payment, cause: Cause | None) -> Message:
    reason = payment.failure_reason or models.PROVIDER_UNAVAILABLE
    return _event(
        PaymentEvent.FAILED,
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


def refunded(payment: Payment, refund: Refund, cause: Cause | None) -> Message:
    return _event(
        PaymentEvent.REFUNDED,
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


def voided(order_id: str, payment: Payment | None, at: datetime, cause: Cause | None) -> Message:
    payload = payment_events_pb2.PaymentVoided(order_id=order_id, voided_at=_stamp(at))
    if payment is not None:
        payload.payment_id = str(payment.id)
        payload.account_id = str(payment.account_id)
        payload.amount.CopyFrom(_money(payment))
    return _event(PaymentEvent.VOIDED, order_id, payload, cause)
