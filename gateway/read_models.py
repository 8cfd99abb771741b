"""GraphQL types that need no request context: money, time, and the payment of an order.

The request's DataLoaders sit below the context and build these directly; the domain schema
modules show them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum

import strawberry
from google.protobuf import timestamp_pb2

from ecommerce.common.v1 import money_pb2
from ecommerce.payment.v1 import payment_pb2
from servicekit.money import to_decimal


def to_datetime(stamp: timestamp_pb2.Timestamp) -> datetime:
    """A protobuf timestamp as an aware datetime in UTC, to the microsecond.

    Built directly: `Timestamp.ToDatetime` with a time zone costs five times as much, and every
    listed product carries two of these."""
    return datetime.fromtimestamp(stamp.seconds, UTC).replace(microsecond=stamp.nanos // 1000)


@strawberry.type(description="An amount of money. The amount is a decimal string, never a float.")
class Money:
    amount: Decimal = strawberry.field(description='Decimal amount in major units, e.g. "12.50".')
    currency: str = strawberry.field(description="ISO 4217 currency code, e.g. EUR.")

    @classmethod
    def from_proto(cls, message: money_pb2.Money) -> Money:
        return cls(amount=to_decimal(message.amount_minor, message.currency), currency=message.currency)


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


PAYMENT_STATUS_FROM_PROTO = {
    payment_pb2.PAYMENT_STATUS_PENDING: PaymentStatus.PENDING,
    payment_pb2.PAYMENT_STATUS_SUCCEEDED: PaymentStatus.SUCCEEDED,
    payment_pb2.PAYMENT_STATUS_FAILED: PaymentStatus.FAILED,
    payment_pb2.PAYMENT_STATUS_REFUNDED: PaymentStatus.REFUNDED,
    payment_pb2.PAYMENT_STATUS_VOIDED: PaymentStatus.VOIDED,
}
FAILURE_REASON_FROM_PROTO = {
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
            status=PAYMENT_STATUS_FROM_PROTO.get(message.status, PaymentStatus.PENDING),
            amount=Money.from_proto(message.amount),
            provider=message.provider,
            provider_reference=message.provider_reference or None,
            failure_reason=FAILURE_REASON_FROM_PROTO.get(message.failure_reason),
            failure_message=message.failure_message or None,
            created_at=to_datetime(message.created_at),
            updated_at=to_datetime(message.updated_at),
        )
