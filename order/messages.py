"""What the order service publishes: the saga's commands and the facts about orders.

Commands go to `inventory.commands` and `payment.commands`; facts to `order.events` (created,
status_changed for every transition, and the milestones confirmed / cancelled / shipped /
delivered carrying everything an e-mail needs). All are keyed by order id, in the order's flow.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message as Payload

from ecommerce.events.v1 import inventory_events_pb2, order_events_pb2, payment_events_pb2
from ecommerce.order.v1 import order_pb2
from order import domain
from order.convert import (
    account_text,
    address_to_proto,
    breakdown_fields,
    items_to_proto,
    reason_proto,
    status_proto,
)
from order.models import Order
from servicekit import money
from servicekit.messages import Cause, Message
from servicekit.timestamps import to_timestamp
from servicekit.topics import (
    INVENTORY_COMMANDS,
    ORDER_EVENTS,
    PAYMENT_COMMANDS,
    InventoryCommand,
    OrderEvent,
    PaymentCommand,
)


def _message(topic: str, event_type: str, order: Order, payload: Payload, causation_id: str = "") -> Message:
    """A message of this order's flow, caused by the event `causation_id` (if any)."""
    return Message(topic, event_type, str(order.id), payload, Cause(causation_id, str(order.id)))


GUEST_PAYER = "00000000-0000-0000-0000-000000000000"


def payment_idempotency_key(order: Order) -> str:
    """Stable for the order, so that every re-send of AuthorizePayment is the same charge."""
    return f"order-{order.id}"


def command(order: Order, cmd: domain.Command, *, causation_id: str = "") -> Message:
    """The outbox message of one saga command for this order."""
    order_id = str(order.id)
    match cmd:
        case domain.ReserveStock():
            lines = [
                inventory_events_pb2.StockLine(
                    product_id=str(i.product_id),
                    quantity=i.quantity,
                    variant_id=str(i.variant_id) if i.variant_id else "",
                )
                for i in order.items
            ]
            payload: Payload = inventory_events_pb2.ReserveStock(order_id=order_id, lines=lines)
            return _message(INVENTORY_COMMANDS, InventoryCommand.RESERVE_STOCK, order, payload, causation_id)
        case domain.CommitStock():
            payload = inventory_events_pb2.CommitStock(order_id=order_id)
            return _message(INVENTORY_COMMANDS, InventoryCommand.COMMIT_STOCK, order, payload, causation_id)
        case domain.ReleaseStock(reason=reason):
            payload = inventory_events_pb2.ReleaseStock(order_id=order_id, reason=reason)
            return _message(INVENTORY_COMMANDS, InventoryCommand.RELEASE_STOCK, order, payload, causation_id)
        case domain.AuthorizePayment():
            if not order.payment_token:
                raise ValueError(f"order {order_id} has no payment token to authorize with")
            payload = payment_events_pb2.AuthorizePayment(
                order_id=order_id,
                # A guest's payment belongs to no account: the nil id stands for "a guest".
                account_id=account_text(order) or GUEST_PAYER,
                amount=money.to_proto(order.total_minor, order.currency),
                payment_token=order.payment_token,
                idempotency_key=payment_idempotency_key(order),
            )
            return _message(PAYMENT_COMMANDS, PaymentCommand.AUTHORIZE_PAYMENT, order, payload, causation_id)
        case domain.VoidPayment(reason=reason):
            payload = payment_events_pb2.VoidPayment(order_id=order_id, reason=reason)
            return _message(PAYMENT_COMMANDS, PaymentCommand.VOID_PAYMENT, order, payload, causation_id)
        case domain.RefundPayment(reason=reason):
            payload = payment_events_pb2.RefundPayment(order_id=order_id, reason=reason)
            return _message(PAYMENT_COMMANDS, PaymentCommand.REFUND_PAYMENT, order, payload, causation_id)
    raise TypeError(f"unknown command {cmd!r}")


def created(order: Order) -> Message:
    payload = order_events_pb2.OrderCreated(
        order_id=str(order.id),
        account_id=account_text(order),
        items=items_to_proto(order),
        total=money.to_proto(order.total_minor, order.currency),
        shipping_address=address_to_proto(order),
        created_at=to_timestamp(order.created_at),
        **breakdown_fields(order),
    )
    return _message(ORDER_EVENTS, OrderEvent.CREATED, order, payload)


# The statuses whose entry has a fact of its own, with everything an e-mail needs.
MILESTONES = frozenset(
    {domain.Status.CONFIRMED, domain.Status.CANCELLED, domain.Status.SHIPPED, domain.Status.DELIVERED}
)


def transition(
    order: Order, old_status: str | None, entry: domain.HistoryEntry, at: datetime, *, causation_id: str = ""
) -> list[Message]:
    """order.status_changed, and the milestone fact of the status entered, if it has one."""
    order_id, account_id = str(order.id), account_text(order)
    messages = [
        _message(
            ORDER_EVENTS,
            OrderEvent.STATUS_CHANGED,
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
                at=to_timestamp(at),
            ),
            causation_id,
        )
    ]
    if entry.status not in MILESTONES:
        return messages
    # Only a milestone carries the items and the address: the saga reads them for it alone.
    items, total, address = (
        items_to_proto(order),
        money.to_proto(order.total_minor, order.currency),
        address_to_proto(order),
    )
    extras = breakdown_fields(order)
    milestone: Payload | None = None
    match entry.status:
        case domain.Status.CONFIRMED:
            milestone = order_events_pb2.OrderConfirmed(
                order_id=order_id,
                account_id=account_id,
                items=items,
                total=total,
                payment_id=order.payment_id or "",
                shipping_address=address,
                confirmed_at=to_timestamp(at),
                **extras,
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
                cancelled_at=to_timestamp(at),
                **extras,
            )
        case domain.Status.SHIPPED:
            milestone = order_events_pb2.OrderShipped(
                order_id=order_id,
                account_id=account_id,
                items=items,
                total=total,
                shipping_address=address,
                shipped_at=to_timestamp(at),
                **extras,
            )
        case domain.Status.DELIVERED:
            milestone = order_events_pb2.OrderDelivered(
                order_id=order_id,
                account_id=account_id,
                items=items,
                total=total,
                shipping_address=address,
                delivered_at=to_timestamp(at),
                **extras,
            )
    if milestone is not None:
        event_type = OrderEvent(f"order.{entry.status.value.lower()}")
        messages.append(_message(ORDER_EVENTS, event_type, order, milestone, causation_id))
    return messages
