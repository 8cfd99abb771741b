"""Conversions between the payment service's rows and its protobuf messages."""

from __future__ import annotations

from datetime import timedelta

from ecommerce.payment.v1 import payment_pb2
from payment import models
from payment.models import Payment
from servicekit import money
from servicekit.resilience import BreakerState, CircuitBreaker
from servicekit.timestamps import to_timestamp

STATUS_TO_PROTO: dict[str, payment_pb2.PaymentStatus.ValueType] = {
    models.PENDING: payment_pb2.PAYMENT_STATUS_PENDING,
    models.SUCCEEDED: payment_pb2.PAYMENT_STATUS_SUCCEEDED,
    models.FAILED: payment_pb2.PAYMENT_STATUS_FAILED,
    models.REFUNDED: payment_pb2.PAYMENT_STATUS_REFUNDED,
    models.VOIDED: payment_pb2.PAYMENT_STATUS_VOIDED,
}
FAILURE_REASON_TO_PROTO: dict[str, payment_pb2.PaymentFailureReason.ValueType] = {
    models.DECLINED: payment_pb2.PAYMENT_FAILURE_REASON_DECLINED,
    models.INVALID_TOKEN: payment_pb2.PAYMENT_FAILURE_REASON_INVALID_TOKEN,
    models.PROVIDER_TIMEOUT: payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_TIMEOUT,
    models.PROVIDER_UNAVAILABLE: payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_UNAVAILABLE,
}
BREAKER_TO_PROTO: dict[BreakerState, payment_pb2.BreakerState.ValueType] = {
    BreakerState.CLOSED: payment_pb2.BREAKER_STATE_CLOSED,
    BreakerState.OPEN: payment_pb2.BREAKER_STATE_OPEN,
    BreakerState.HALF_OPEN: payment_pb2.BREAKER_STATE_HALF_OPEN,
}


def failure_reason_proto(reason: str | None) -> payment_pb2.PaymentFailureReason.ValueType:
    return FAILURE_REASON_TO_PROTO.get(reason or "", payment_pb2.PAYMENT_FAILURE_REASON_UNSPECIFIED)


def payment_to_proto(payment: Payment) -> payment_pb2.Payment:
    return payment_pb2.Payment(
        id=str(payment.id),
        order_id=str(payment.order_id),
        account_id=str(payment.account_id),
        status=STATUS_TO_PROTO[payment.status],
        amount=money.to_proto(payment.amount_minor, payment.currency),
        provider=payment.provider,
        provider_reference=payment.provider_reference or "",
        failure_reason=failure_reason_proto(payment.failure_reason),
        failure_message=payment.failure_message or "",
        created_at=to_timestamp(payment.created_at),
        updated_at=to_timestamp(payment.updated_at),
    )


def breaker_to_proto(provider: str, breaker: CircuitBreaker) -> payment_pb2.GetBreakerStateResponse:
    response = payment_pb2.GetBreakerStateResponse(
        provider=provider,
        state=BREAKER_TO_PROTO[breaker.state],
        consecutive_failures=breaker.consecutive_failures,
        failure_threshold=breaker.failure_threshold,
    )
    response.cool_down.FromTimedelta(timedelta(seconds=breaker.cool_down))
    if breaker.opened_at is not None:
        response.opened_at.CopyFrom(to_timestamp(breaker.opened_at))
    return response
