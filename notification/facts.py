"""The order facts a status change stands for.

The order service publishes one `order.status_changed` per transition; placing and the milestones
carry the order's `details`. E-mails and webhooks are still about `order.created`,
`order.confirmed`, `order.cancelled`, `order.shipped` and `order.delivered` (the templates, the
webhook event types and the JSON subscribers receive), so the consumer derives that fact from the
status change and handles it exactly as one published on its own, which an order service before
the change did (and which `order.events` may still hold): one code path for both formats.

A derived fact's event id is a UUID derived from the status change's, so that a redelivered status
change derives the same id (its e-mail and webhook deliveries are recorded once) and a webhook
subscribed to both `order.status_changed` and `order.confirmed` gets both. A status change
without details (an older order service's, whose milestone fact follows on its own) derives
nothing: each transition is written by one order service, so it is published in one format only,
and an e-mail or a webhook delivery is recorded at most once per transition.
"""

from __future__ import annotations

import uuid
from typing import Any

from google.protobuf.message import Message

from ecommerce.events.v1 import order_events_pb2
from ecommerce.order.v1 import order_pb2
from servicekit.inbox import Envelope
from servicekit.kafka import unpack
from servicekit.topics import OrderEvent

# Fixed: derived ids must be the same in every notification process, forever.
DERIVED_IDS = uuid.UUID("6f1c1d0e-4b7a-5c53-9a55-0f5e3c1d2a91")

# The status entered -> the fact it stands for.
FACT_OF_STATUS: dict[int, OrderEvent] = {
    order_pb2.ORDER_STATUS_PENDING: OrderEvent.CREATED,
    order_pb2.ORDER_STATUS_CONFIRMED: OrderEvent.CONFIRMED,
    order_pb2.ORDER_STATUS_CANCELLED: OrderEvent.CANCELLED,
    order_pb2.ORDER_STATUS_SHIPPED: OrderEvent.SHIPPED,
    order_pb2.ORDER_STATUS_DELIVERED: OrderEvent.DELIVERED,
}
# Everything of the details but the cancellation's own part, as the facts name them.
_COMMON = ("items", "total", "shipping_address", "subtotal", "discount", "shipping", "tax")


def derived_event_id(event_id: str, event_type: str) -> str:
    return str(uuid.uuid5(DERIVED_IDS, f"{event_id}/{event_type}"))


def fact_type(change: order_events_pb2.OrderStatusChanged) -> OrderEvent | None:
    """The fact a status change stands for; None for a transition without one, and for an older
    order service's status change (no details: its fact was published on its own)."""
    if not change.HasField("details"):
        return None
    return FACT_OF_STATUS.get(change.new_status)


def _fact(change: order_events_pb2.OrderStatusChanged, event_type: OrderEvent) -> Message:
    d: Any = change.details
    common: dict[str, Any] = {
        "order_id": change.order_id,
        "account_id": change.account_id,
        "email": change.email,
        **{name: getattr(d, name) for name in _COMMON if name == "items" or d.HasField(name)},
    }
    match event_type:
        case OrderEvent.CREATED:
            return order_events_pb2.OrderCreated(created_at=change.at, **common)
        case OrderEvent.CONFIRMED:
            return order_events_pb2.OrderConfirmed(payment_id=d.payment_id, confirmed_at=change.at, **common)
        case OrderEvent.CANCELLED:
            common.pop("shipping_address", None)
            return order_events_pb2.OrderCancelled(
                cancellation_reason=change.cancellation_reason,
                reason=change.reason,
                previous_status=change.old_status,
                refund_expected=d.refund_expected,
                cancelled_at=change.at,
                **common,
            )
        case OrderEvent.SHIPPED:
            return order_events_pb2.OrderShipped(shipped_at=change.at, **common)
        case OrderEvent.DELIVERED:
            return order_events_pb2.OrderDelivered(delivered_at=change.at, **common)
    raise ValueError(f"no fact {event_type}")


def derived_fact(envelope: Envelope) -> Envelope | None:
    """The envelope of the fact an `order.status_changed` stands for, as an older order service
    would have published it (same aggregate, time, producer and flow); None if it has none."""
    change: Any = unpack(envelope, order_events_pb2.OrderStatusChanged)
    event_type = fact_type(change)
    if event_type is None:
        return None
    fact = Envelope()
    fact.CopyFrom(envelope)
    fact.event_id = derived_event_id(envelope.event_id, event_type)
    fact.event_type = event_type
    fact.payload.Pack(_fact(change, event_type))
    return fact
