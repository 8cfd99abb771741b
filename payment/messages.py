"""What the payment service publishes on `payment.events`: the facts it answers the saga with.

Each reply is keyed by order id and caused by the command it answers (`servicekit.messages.Cause`).
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message as Payload

from ecommerce.events.v1 import payment_events_pb2
from payment import models
from payment.convert import FAILURE_REASON_TO_PROTO
from payment.models import Payment, Refund
from servicekit import money
from servicekit.messages import NO_CAUSE, Cause, Message
from servicekit.timestamps import to_timestamp
from servicekit.topics import PAYMENT_EVENTS, PaymentEvent


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
            amount=money.to_proto(payment.amount_minor, payment.currency),
            provider=payment.provider,
            provider_reference=payment.provider_reference or "",
            succeeded_at=to_timestamp(payment.updated_at),
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
            amount=money.to_proto(payment.amount_minor, payment.currency),
            reason=FAILURE_REASON_TO_PROTO[reason],
            message=payment.failure_message or "",
            retryable=reason in models.RETRYABLE_REASONS,
            failed_at=to_timestamp(payment.updated_at),
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
            amount=money.to_proto(refund.amount_minor, refund.currency),
            reason=refund.reason,
            refunded_by=str(refund.refunded_by) if refund.refunded_by else "",
            refunded_at=to_timestamp(refund.created_at),
        ),
        cause,
    )


def voided(order_id: str, payment: Payment | None, at: datetime, cause: Cause | None) -> Message:
    payload = payment_events_pb2.PaymentVoided(order_id=order_id, voided_at=to_timestamp(at))
    if payment is not None:
        payload.payment_id = str(payment.id)
        payload.account_id = str(payment.account_id)
        payload.amount.CopyFrom(money.to_proto(payment.amount_minor, payment.currency))
    return _event(PaymentEvent.VOIDED, order_id, payload, cause)
