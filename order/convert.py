"""Conversions between the order service's rows and its protobuf messages."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from ecommerce.common.v1 import money_pb2
from ecommerce.order.v1 import order_pb2
from order import domain
from order.models import Order

STATUS_TO_PROTO = {
    domain.Status.PENDING: order_pb2.ORDER_STATUS_PENDING,
    domain.Status.AWAITING_PAYMENT: order_pb2.ORDER_STATUS_AWAITING_PAYMENT,
    domain.Status.CONFIRMED: order_pb2.ORDER_STATUS_CONFIRMED,
    domain.Status.SHIPPED: order_pb2.ORDER_STATUS_SHIPPED,
    domain.Status.DELIVERED: order_pb2.ORDER_STATUS_DELIVERED,
    domain.Status.CANCELLED: order_pb2.ORDER_STATUS_CANCELLED,
}
STATUS_FROM_PROTO = {v: k for k, v in STATUS_TO_PROTO.items()}
REASON_TO_PROTO = {
    domain.CancellationReason.OUT_OF_STOCK: order_pb2.CANCELLATION_REASON_OUT_OF_STOCK,
    domain.CancellationReason.PAYMENT_DECLINED: order_pb2.CANCELLATION_REASON_PAYMENT_DECLINED,
    domain.CancellationReason.PAYMENT_UNAVAILABLE: order_pb2.CANCELLATION_REASON_PAYMENT_UNAVAILABLE,
    domain.CancellationReason.EXPIRED: order_pb2.CANCELLATION_REASON_EXPIRED,
    domain.CancellationReason.CUSTOMER_CANCELLED: order_pb2.CANCELLATION_REASON_CUSTOMER_CANCELLED,
    domain.CancellationReason.ADMIN_CANCELLED: order_pb2.CANCELLATION_REASON_ADMIN_CANCELLED,
    domain.CancellationReason.INVENTORY_UNAVAILABLE: order_pb2.CANCELLATION_REASON_INVENTORY_UNAVAILABLE,
}


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def money(amount_minor: int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=amount_minor, currency=currency)


def items_to_proto(order: Order) -> list[order_pb2.OrderItem]:
    return [
        order_pb2.OrderItem(
            product_id=str(item.product_id),
            sku=item.sku,
            name=item.name,
            unit_price=money(item.unit_price_minor, order.currency),
            quantity=item.quantity,
            line_total=money(item.line_total_minor, order.currency),
        )
        for item in order.items
    ]


def address_to_proto(order: Order) -> order_pb2.ShippingAddress:
    return order_pb2.ShippingAddress(**order.shipping_address)


def status_proto(status: str | domain.Status | None) -> int:
    return STATUS_TO_PROTO[domain.Status(status)] if status else order_pb2.ORDER_STATUS_UNSPECIFIED


def reason_proto(reason: str | None) -> int:
    if not reason:
        return order_pb2.CANCELLATION_REASON_UNSPECIFIED
    return REASON_TO_PROTO[domain.CancellationReason(reason)]
