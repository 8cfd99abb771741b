"""What the order service sends and hears on Kafka.

Out, through the outbox: the saga's commands (`inventory.commands`, `payment.commands`) and the
facts about orders (`order.events`: created, status_changed for every transition, and the
milestones confirmed / cancelled / shipped / delivered carrying everything an e-mail needs).

In, through the inbox: the replies on `inventory.events` and `payment.events`, translated into
`domain` events and handed to the saga (`OrderService.handle_reply`) in the consumer's
transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecommerce.common.v1 import money_pb2
from ecommerce.events.v1 import envelope_pb2, inventory_events_pb2, order_events_pb2, payment_events_pb2
from ecommerce.order.v1 import order_pb2
from ecommerce.payment.v1 import payment_pb2
from order import domain
from order.models import Order
from servicekit.inbox import EventConsumer
from servicekit.kafka import unpack

ORDER_EVENTS = "order.events"
INVENTORY_COMMANDS = "inventory.commands"
PAYMENT_COMMANDS = "payment.commands"
REPLY_TOPICS = ("inventory.events", "payment.events")
CONSUMER_NAME = "order-saga"

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
REJECTION_NAMES = {
    inventory_events_pb2.STOCK_REJECTION_REASON_INSUFFICIENT_STOCK: "insufficient stock",
    inventory_events_pb2.STOCK_REJECTION_REASON_PRODUCT_NOT_FOUND: "product not found",
    inventory_events_pb2.STOCK_REJECTION_REASON_PRODUCT_ARCHIVED: "product archived",
}


# -- conversions shared with the servicer ------------------------------------------------------


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


# -- commands ---------------------------------------------------------------------------------------


def _message(
    topic: str, event_type: str, order: Order, payload: Message, causation_id: str = ""
) -> dict[str, Any]:
    return {
        "topic": topic,
        "event_type": event_type,
        "aggregate_id": str(order.id),
        "payload": payload,
        "causation_id": causation_id,
        "correlation_id": str(order.id),
    }


def payment_idempotency_key(order: Order) -> str:
    """Stable for the order, so that every re-send of AuthorizePayment is the same charge."""
    return f"order-{order.id}"


def command(order: Order, cmd: domain.Command, *, causation_id: str = "") -> dict[str, Any]:
    """The outbox message of one saga command for this order."""
    order_id = str(order.id)
    match cmd:
        case domain.ReserveStock():
            lines = [
                inventory_events_pb2.StockLine(product_id=str(i.product_id), quantity=i.quantity)
                for i in order.items
            ]
            payload: Message = inventory_events_pb2.ReserveStock(order_id=order_id, lines=lines)
            return _message(INVENTORY_COMMANDS, "inventory.reserve_stock", order, payload, causation_id)
        case domain.CommitStock():
            payload = inventory_events_pb2.CommitStock(order_id=order_id)
            return _message(INVENTORY_COMMANDS, "inventory.commit_stock", order, payload, causation_id)
        case domain.ReleaseStock(reason=reason):
            payload = inventory_events_pb2.ReleaseStock(order_id=order_id, reason=reason)
            return _message(INVENTORY_COMMANDS, "inventory.release_stock", order, payload, causation_id)
        case domain.AuthorizePayment():
            if not order.payment_token:
                raise ValueError(f"order {order_id} has no payment token to authorize with")
            payload = payment_events_pb2.AuthorizePayment(
                order_id=order_id,
                account_id=str(order.account_id),
                amount=money(order.total_minor, order.currency),
                payment_token=order.payment_token,
                idempotency_key=payment_idempotency_key(order),
            )
            return _message(PAYMENT_COMMANDS, "payment.authorize_payment", order, payload, causation_id)
        case domain.VoidPayment(reason=reason):
            payload = payment_events_pb2.VoidPayment(order_id=order_id, reason=reason)
            return _message(PAYMENT_COMMANDS, "payment.void_payment", order, payload, causation_id)
        case domain.RefundPayment(reason=reason):
            payload = payment_events_pb2.RefundPayment(order_id=order_id, reason=reason)
            return _message(PAYMENT_COMMANDS, "payment.refund_payment", order, payload, causation_id)
    raise TypeError(f"unknown command {cmd!r}")


# -- facts about orders --------------------------------------------------------------------------------


def created(order: Order) -> dict[str, Any]:
    payload = order_events_pb2.OrderCreated(
        order_id=str(order.id),
        account_id=str(order.account_id),
        items=items_to_proto(order),
        total=money(order.total_minor, order.currency),
        shipping_address=address_to_proto(order),
        created_at=timestamp(order.created_at),
    )
    return _message(ORDER_EVENTS, "order.created", order, payload)


def transition(
    order: Order, old_status: str | None, entry: domain.HistoryEntry, at: datetime, *, causation_id: str = ""
) -> list[dict[str, Any]]:
    """order.status_changed, and the milestone fact of the status entered, if it has one."""
    order_id, account_id = str(order.id), str(order.account_id)
    messages = [
        _message(
            ORDER_EVENTS,
            "order.status_changed",
            order,
            order_events_pb2.OrderStatusChanged(
                order_id=order_id,
                account_id=account_id,
                old_status=status_proto(old_status),
                new_status=status_proto(entry.status),
                reason=entry.reason,
                cancellation_reason=reason_proto(order.cancellation_reason)
                if entry.status is domain.Status.CANCELLED
                else order_pb2.CANCELLATION_REASON_UNSPECIFIED,
                at=timestamp(at),
            ),
            causation_id,
        )
    ]
    items, total, address = (
        items_to_proto(order),
        money(order.total_minor, order.currency),
        address_to_proto(order),
    )
    milestone: Message | None = None
    match entry.status:
        case domain.Status.CONFIRMED:
            milestone = order_events_pb2.OrderConfirmed(
                order_id=order_id,
                account_id=account_id,
                items=items,
                total=total,
                payment_id=order.payment_id or "",
                shipping_address=address,
                confirmed_at=timestamp(at),
            )
        case domain.Status.CANCELLED:
            milestone = order_events_pb2.OrderCancelled(
                order_id=order_id,
                account_id=account_id,
                items=items,
                total=total,
                cancellation_reason=reason_proto(order.cancellation_reason),
                reason=entry.reason,
                previous_status=status_proto(old_status),
                refund_expected=old_status == domain.Status.CONFIRMED,
                cancelled_at=timestamp(at),
            )
        case domain.Status.SHIPPED:
            milestone = order_events_pb2.OrderShipped(
                order_id=order_id,
                account_id=account_id,
                items=items,
                total=total,
                shipping_address=address,
                shipped_at=timestamp(at),
            )
        case domain.Status.DELIVERED:
            milestone = order_events_pb2.OrderDelivered(
                order_id=order_id,
                account_id=account_id,
                items=items,
                total=total,
                shipping_address=address,
                delivered_at=timestamp(at),
            )
    if milestone is not None:
        event_type = f"order.{entry.status.value.lower()}"
        messages.append(_message(ORDER_EVENTS, event_type, order, milestone, causation_id))
    return messages


# -- replies ---------------------------------------------------------------------------------------------

Translate = Callable[[Any], domain.Event]

_PAYMENT_FAILURES = {
    payment_pb2.PAYMENT_FAILURE_REASON_DECLINED: "declined by the provider",
    payment_pb2.PAYMENT_FAILURE_REASON_INVALID_TOKEN: "the payment token is not valid",
    payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_TIMEOUT: "the provider timed out",
    payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_UNAVAILABLE: "the provider is unavailable",
}


def _rejected(message: inventory_events_pb2.StockRejected) -> domain.Event:
    detail = "; ".join(
        f"{line.product_id} ({REJECTION_NAMES.get(line.reason, 'rejected')}: "
        f"{line.requested} requested, {line.available} available)"
        for line in message.lines
    )
    return domain.StockRejected(detail)


def _failed(message: payment_events_pb2.PaymentFailed) -> domain.Event:
    detail = _PAYMENT_FAILURES.get(message.reason, "") or message.message
    return domain.PaymentFailed(retryable=message.retryable, detail=detail, payment_id=message.payment_id)


REPLIES: dict[str, tuple[type[Message], Translate]] = {
    "inventory.stock_reserved": (inventory_events_pb2.StockReserved, lambda m: domain.StockReserved()),
    "inventory.stock_rejected": (inventory_events_pb2.StockRejected, _rejected),
    "inventory.stock_released": (inventory_events_pb2.StockReleased, lambda m: domain.StockReleased()),
    "inventory.stock_committed": (inventory_events_pb2.StockCommitted, lambda m: domain.StockCommitted()),
    "inventory.reservation_expired": (
        inventory_events_pb2.ReservationExpired,
        lambda m: domain.ReservationExpired(),
    ),
    "payment.succeeded": (
        payment_events_pb2.PaymentSucceeded,
        lambda m: domain.PaymentSucceeded(payment_id=m.payment_id),
    ),
    "payment.failed": (payment_events_pb2.PaymentFailed, _failed),
    "payment.voided": (
        payment_events_pb2.PaymentVoided,
        lambda m: domain.PaymentVoided(payment_id=m.payment_id),
    ),
    "payment.refunded": (
        payment_events_pb2.PaymentRefunded,
        lambda m: domain.PaymentRefunded(payment_id=m.payment_id),
    ),
}


def translate(envelope: envelope_pb2.EventEnvelope) -> tuple[str, domain.Event]:
    """The order id and domain event of a reply; ValueError for a payload of the wrong type."""
    message_type, convert = REPLIES[envelope.event_type]
    message = unpack(envelope, message_type)
    order_id = getattr(message, "order_id", "") or envelope.aggregate_id
    return order_id, convert(message)


ReplyHandler = Callable[[AsyncSession, str, domain.Event, str], Awaitable[None]]


def saga_consumer(
    *,
    handle: ReplyHandler,
    sessions: async_sessionmaker[AsyncSession],
    inbox: Table,
    bootstrap_servers: str,
    dead_letters: Any,
    max_attempts: int,
    session_timeout_ms: int,
) -> EventConsumer:
    """The consumer of the saga's replies; each runs in one transaction with its inbox row."""

    async def on_reply(session: AsyncSession, envelope: envelope_pb2.EventEnvelope) -> None:
        order_id, event = translate(envelope)
        await handle(session, order_id, event, envelope.event_id)

    return EventConsumer(
        name=CONSUMER_NAME,
        topics=REPLY_TOPICS,
        handlers=dict.fromkeys(REPLIES, on_reply),
        sessions=sessions,
        inbox=inbox,
        bootstrap_servers=bootstrap_servers,
        dead_letters=dead_letters,
        max_attempts=max_attempts,
        session_timeout_ms=session_timeout_ms,
    )
