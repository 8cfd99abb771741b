"""Payments: the `Payment` of an order (through the `payment_by_order_id` DataLoader) and refunds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

from ecommerce.payment.v1 import payment_pb2
from gateway.context import Context
from gateway.loaders import register
from gateway.schema.common import Money, to_datetime

Info = strawberry.Info[Context, None]


@strawberry.enum(description="Where a payment stands.")
class PaymentStatus(Enum):
    PENDING = strawberry.enum_value("PENDING", description="The provider has not answered yet.")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="Charged.")
    FAILED = strawberry.enum_value("FAILED", description="Not charged; see `failureReason`.")
    REFUNDED = strawberry.enum_value("REFUNDED", description="Charged, then paid back in full.")
    VOIDED = strawberry.enum_value(
        "VOIDED", description="The order was cancelled before confirmation; nothing stays charged."
    )


@strawberry.enum(description="Why a payment failed.")
class PaymentFailureReason(Enum):
    DECLINED = strawberry.enum_value("DECLINED", description="The card was declined. Not retried.")
    INVALID_TOKEN = strawberry.enum_value(
        "INVALID_TOKEN", description="The payment token is unknown to the provider. Not retried."
    )
    PROVIDER_TIMEOUT = strawberry.enum_value(
        "PROVIDER_TIMEOUT", description="The provider did not answer in time, however often asked."
    )
    PROVIDER_UNAVAILABLE = strawberry.enum_value(
        "PROVIDER_UNAVAILABLE", description="The provider was unavailable (or its circuit breaker open)."
    )


STATUS_FROM_PROTO = {
    payment_pb2.PAYMENT_STATUS_PENDING: PaymentStatus.PENDING,
    payment_pb2.PAYMENT_STATUS_SUCCEEDED: PaymentStatus.SUCCEEDED,
    payment_pb2.PAYMENT_STATUS_FAILED: PaymentStatus.FAILED,
    payment_pb2.PAYMENT_STATUS_REFUNDED: PaymentStatus.REFUNDED,
    payment_pb2.PAYMENT_STATUS_VOIDED: PaymentStatus.VOIDED,
}
REASON_FROM_PROTO = {
    payment_pb2.PAYMENT_FAILURE_REASON_DECLINED: PaymentFailureReason.DECLINED,
    payment_pb2.PAYMENT_FAILURE_REASON_INVALID_TOKEN: PaymentFailureReason.INVALID_TOKEN,
    payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_TIMEOUT: PaymentFailureReason.PROVIDER_TIMEOUT,
    payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_UNAVAILABLE: PaymentFailureReason.PROVIDER_UNAVAILABLE,
}


@strawberry.type(description="The payment of an order (one per order).")
class Payment:
    id: strawberry.ID = strawberry.field(description="Payment id (UUID).")
    order_id: strawberry.ID = strawberry.field(description="The order it pays for.")
    status: PaymentStatus = strawberry.field(description="Where the payment stands.")
    amount: Money = strawberry.field(description="The amount charged: the order's total.")
    provider: str = strawberry.field(description='The payment provider, e.g. "simulated".')
    provider_reference: str | None = strawberry.field(
        description="The provider's id for the charge; null until the provider answered."
    )
    failure_reason: PaymentFailureReason | None = strawberry.field(
        description="Why it failed; null unless status is FAILED."
    )
    failure_message: str | None = strawberry.field(
        description="The provider's explanation of a failure, for people; null otherwise."
    )
    created_at: datetime = strawberry.field(description="When the payment was first attempted.")
    updated_at: datetime = strawberry.field(description="When the payment last changed.")

    @classmethod
    def from_proto(cls, message: payment_pb2.Payment) -> Payment:
        return cls(
            id=strawberry.ID(message.id),
            order_id=strawberry.ID(message.order_id),
            status=STATUS_FROM_PROTO.get(message.status, PaymentStatus.PENDING),
            amount=Money.from_proto(message.amount),
            provider=message.provider,
            provider_reference=message.provider_reference or None,
            failure_reason=REASON_FROM_PROTO.get(message.failure_reason),
            failure_message=message.failure_message or None,
            created_at=to_datetime(message.created_at),
            updated_at=to_datetime(message.updated_at),
        )


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


@register("payment_by_order_id")
async def payment_by_order_id(ctx: Context, order_ids: Sequence[str]) -> list[Payment | None]:
    """The payments of every order of one request in one BatchGetPaymentsByOrder call; None for an
    order without a payment (or one the caller may not see)."""
    keys = [str(order_id) for order_id in order_ids]
    wanted = sorted({key for key in keys if _is_uuid(key)})
    if not wanted:
        return [None] * len(keys)
    response = await ctx.call(
        ctx.services.payment.BatchGetPaymentsByOrder,
        payment_pb2.BatchGetPaymentsByOrderRequest(order_ids=wanted),
    )
    by_order = {p.order_id: Payment.from_proto(p) for p in response.payments}
    return [by_order.get(key.lower()) for key in keys]


@strawberry.type
class PaymentMutation:
    @strawberry.mutation(
        description="Pay a SUCCEEDED payment back in full through the provider; a REFUNDED payment is "
        "returned unchanged. It does not cancel the order. ADMIN only. CONFLICT unless SUCCEEDED or "
        "REFUNDED; SERVICE_UNAVAILABLE while the provider is down."
    )
    async def refund_payment(
        self,
        info: Info,
        payment_id: Annotated[strawberry.ID, strawberry.argument(description="The payment to refund.")],
        reason: Annotated[
            str | None, strawberry.argument(description="A note for the audit trail, at most 500 characters.")
        ] = None,
    ) -> Payment:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.payment.RefundPayment,
            payment_pb2.RefundPaymentRequest(payment_id=str(payment_id), reason=reason or ""),
        )
        return Payment.from_proto(response.payment)
