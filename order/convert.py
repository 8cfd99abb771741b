"""Conversions between the order service's rows and its protobuf messages."""

from __future__ import annotations

from typing import Any, TypeVar

from ecommerce.order.v1 import order_pb2
from order import domain
from order.listing import OrderPage
from order.models import Order
from servicekit import money
from servicekit.pages import page_fields
from servicekit.timestamps import to_timestamp

STATUS_TO_PROTO: dict[domain.Status, order_pb2.OrderStatus.ValueType] = {
    domain.Status.PENDING: order_pb2.ORDER_STATUS_PENDING,
    domain.Status.AWAITING_PAYMENT: order_pb2.ORDER_STATUS_AWAITING_PAYMENT,
    domain.Status.CONFIRMED: order_pb2.ORDER_STATUS_CONFIRMED,
    domain.Status.SHIPPED: order_pb2.ORDER_STATUS_SHIPPED,
    domain.Status.DELIVERED: order_pb2.ORDER_STATUS_DELIVERED,
    domain.Status.CANCELLED: order_pb2.ORDER_STATUS_CANCELLED,
}
STATUS_FROM_PROTO = {v: k for k, v in STATUS_TO_PROTO.items()}
REASON_TO_PROTO: dict[domain.CancellationReason, order_pb2.CancellationReason.ValueType] = {
    domain.CancellationReason.OUT_OF_STOCK: order_pb2.CANCELLATION_REASON_OUT_OF_STOCK,
    domain.CancellationReason.PAYMENT_DECLINED: order_pb2.CANCELLATION_REASON_PAYMENT_DECLINED,
    domain.CancellationReason.PAYMENT_UNAVAILABLE: order_pb2.CANCELLATION_REASON_PAYMENT_UNAVAILABLE,
    domain.CancellationReason.EXPIRED: order_pb2.CANCELLATION_REASON_EXPIRED,
    domain.CancellationReason.CUSTOMER_CANCELLED: order_pb2.CANCELLATION_REASON_CUSTOMER_CANCELLED,
    domain.CancellationReason.ADMIN_CANCELLED: order_pb2.CANCELLATION_REASON_ADMIN_CANCELLED,
    domain.CancellationReason.INVENTORY_UNAVAILABLE: order_pb2.CANCELLATION_REASON_INVENTORY_UNAVAILABLE,
}

_Page = TypeVar("_Page", order_pb2.ListMyOrdersResponse, order_pb2.ListOrdersResponse)


def items_to_proto(order: Order) -> list[order_pb2.OrderItem]:
    return [
        order_pb2.OrderItem(
            product_id=str(item.product_id),
            sku=item.sku,
            name=item.name,
            unit_price=money.to_proto(item.unit_price_minor, order.currency),
            quantity=item.quantity,
            line_total=money.to_proto(item.line_total_minor, order.currency),
            variant_id=str(item.variant_id) if item.variant_id else "",
        )
        for item in order.items
    ]


def address_to_proto(order: Order) -> order_pb2.ShippingAddress:
    return order_pb2.ShippingAddress(**order.shipping_address)


def status_proto(status: str | domain.Status | None) -> order_pb2.OrderStatus.ValueType:
    return STATUS_TO_PROTO[domain.Status(status)] if status else order_pb2.ORDER_STATUS_UNSPECIFIED


def status_filter(status: order_pb2.OrderStatus.ValueType) -> str:
    """A listing's status filter: empty for UNSPECIFIED; an unknown number stays a (rejected) filter."""
    if status == order_pb2.ORDER_STATUS_UNSPECIFIED:
        return ""
    known = STATUS_FROM_PROTO.get(status)
    return known.value if known is not None else str(status)


def sort_filter(sort: order_pb2.OrderSort.ValueType) -> str:
    """A listing's sort by name (`order.listing.SORTS`): UNSPECIFIED is the newest first; an
    unknown number stays a (rejected) name."""
    if sort == order_pb2.ORDER_SORT_UNSPECIFIED:
        return "PLACED_AT_DESC"
    name = order_pb2.OrderSort.Name(sort) if sort in order_pb2.OrderSort.values() else str(sort)
    return name.removeprefix("ORDER_SORT_")


def reason_proto(reason: str | None) -> order_pb2.CancellationReason.ValueType:
    if not reason:
        return order_pb2.CANCELLATION_REASON_UNSPECIFIED
    return REASON_TO_PROTO[domain.CancellationReason(reason)]


def account_text(order: Order) -> str:
    """The owner's id; empty for a guest's order."""
    return str(order.account_id) if order.account_id is not None else ""


def breakdown_fields(order: Order) -> dict[str, Any]:
    """The order's e-mail and price breakdown, as the fields of its messages name them."""
    return {
        "email": order.email or "",
        "subtotal": money.to_proto(order.subtotal_minor, order.currency),
        "discount": money.to_proto(order.discount_minor, order.currency),
        "shipping": money.to_proto(order.shipping_minor, order.currency),
        "tax": money.to_proto(order.tax_minor, order.currency),
    }


def order_to_proto(order: Order) -> order_pb2.Order:
    return order_pb2.Order(
        id=str(order.id),
        account_id=account_text(order),
        shipping_method=order.shipping_method or "",
        coupon_code=order.coupon_code or "",
        **breakdown_fields(order),
        status=status_proto(order.status),
        cancellation_reason=reason_proto(order.cancellation_reason),
        items=items_to_proto(order),
        total=money.to_proto(order.total_minor, order.currency),
        payment_id=order.payment_id or "",
        history=[
            order_pb2.StatusChange(
                status=status_proto(entry.status),
                at=to_timestamp(entry.at),
                reason=entry.reason,
                changed_by=entry.changed_by or "",
            )
            for entry in order.history
        ],
        shipping_address=address_to_proto(order),
        created_at=to_timestamp(order.created_at),
        updated_at=to_timestamp(order.updated_at),
    )


def page_to_proto(page: OrderPage, response_type: type[_Page]) -> _Page:
    """A listing's response holding one page of orders."""
    return response_type(orders=[order_to_proto(o) for o in page.items], **page_fields(page))
