"""What the order service publishes: the saga's commands and the facts about orders.

Commands go to `inventory.commands` and `payment.commands`; facts to `order.events`: one
`order.status_changed` per transition, which carries the order's details (items, address,
breakdown) when it is placed and at each milestone (confirmed, cancelled, shipped, delivered), so
that an e-mail or a webhook needs nothing else. All are keyed by order id, in the order's flow.
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


# The statuses whose entry carries the order's details (items, address, breakdown): placing, and
# the milestones an e-mail or a webhook is about.
WITH_DETAILS = frozenset(
    {
        domain.Status.PENDING,
        domain.Status.CONFIRMED,
        domain.Status.CANCELLED,
        domain.Status.SHIPPED,
        domain.Status.DELIVERED,
    }
)


def details(order: Order, old_status: str | None, status: domain.Status) -> order_events_pb2.OrderDetails:
    """What a status change with a fact of its own says about the order; `order` is read whole."""
    fields = breakdown_fields(order)
    del fields["email"]  # the status change's own field
    return order_events_pb2.OrderDetails(
        items=items_to_proto(order),
        total=money.to_proto(order.total_minor, order.currency),
        shipping_address=address_to_proto(order),
        payment_id=order.payment_id or "",
        refund_expected=status is domain.Status.CANCELLED and old_status == domain.Status.CONFIRMED,
        **fields,
    )


def transition(
    order: Order, old_status: str | None, entry: domain.HistoryEntry, at: datetime, *, causation_id: str = ""
) -> Message:
    """The one message of a transition: order.status_changed, with the order's details when the
    status entered is in WITH_DETAILS (then `order` must be read whole)."""
    change = order_events_pb2.OrderStatusChanged(
        order_id=str(order.id),
        account_id=account_text(order),
        old_status=status_proto(old_status),
        new_status=status_proto(entry.status),
        reason=entry.reason,
        cancellation_reason=reason_proto(order.cancellation_reason)
        if entry.status is domain.Status.CANCELLED
        else order_pb2.CANCELLATION_REASON_UNSPECIFIED,
        at=to_timestamp(at),
    )
    if entry.status in WITH_DETAILS:
        change.email = order.email or ""
        change.details.CopyFrom(details(order, old_status, entry.status))
    return _message(ORDER_EVENTS, OrderEvent.STATUS_CHANGED, order, change, causation_id)
