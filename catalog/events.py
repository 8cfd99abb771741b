"""The events the catalog emits.

Catalog facts go to `catalog.events` keyed by product id; answers to the saga go to
`inventory.events` keyed by order id, with the command's event id as their causation id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from catalog.convert import product_to_proto
from catalog.views import Line, ProductView, RejectedLine
from ecommerce.events.v1 import catalog_events_pb2, inventory_events_pb2
from servicekit.messages import Cause, Message
from servicekit.topics import CATALOG_EVENTS as CATALOG_TOPIC
from servicekit.topics import INVENTORY_EVENTS

CAUSES = {
    "ADJUSTMENT": catalog_events_pb2.STOCK_CHANGE_CAUSE_ADJUSTMENT,
    "RESERVATION": catalog_events_pb2.STOCK_CHANGE_CAUSE_RESERVATION,
    "RELEASE": catalog_events_pb2.STOCK_CHANGE_CAUSE_RELEASE,
    "EXPIRY": catalog_events_pb2.STOCK_CHANGE_CAUSE_EXPIRY,
}
REJECTION_REASONS = {
    "INSUFFICIENT_STOCK": inventory_events_pb2.STOCK_REJECTION_REASON_INSUFFICIENT_STOCK,
    "PRODUCT_NOT_FOUND": inventory_events_pb2.STOCK_REJECTION_REASON_PRODUCT_NOT_FOUND,
    "PRODUCT_ARCHIVED": inventory_events_pb2.STOCK_REJECTION_REASON_PRODUCT_ARCHIVED,
    "INVALID_QUANTITY": inventory_events_pb2.STOCK_REJECTION_REASON_UNSPECIFIED,
}


@dataclass(frozen=True)
class ReplyTo:
    """Where a saga answer belongs: the command it answers and the flow it is part of."""

    causation_id: str = ""
    correlation_id: str = ""


def _timestamp(value: datetime | None = None) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value or datetime.now(UTC))
    return stamp


def _lines(lines: Sequence[Line]) -> list[inventory_events_pb2.StockLine]:
    return [inventory_events_pb2.StockLine(product_id=pid, quantity=qty) for pid, qty in lines]


# -- catalog.events ------------------------------------------------------------------------------


def product_created(product: ProductView) -> Message:
    return Message(
        CATALOG_TOPIC,
        "catalog.product_created",
        product.id,
        catalog_events_pb2.ProductCreated(product=product_to_proto(product)),
    )


def product_updated(product: ProductView, changed_fields: Sequence[str]) -> Message:
    return Message(
        CATALOG_TOPIC,
        "catalog.product_updated",
        product.id,
        catalog_events_pb2.ProductUpdated(
            product=product_to_proto(product), changed_fields=list(changed_fields)
        ),
    )


def product_archived(product_id: str, sku: str, archived_at: datetime) -> Message:
    return Message(
        CATALOG_TOPIC,
        "catalog.product_archived",
        product_id,
        catalog_events_pb2.ProductArchived(
            product_id=product_id, sku=sku, archived_at=_timestamp(archived_at)
        ),
    )


def stock_changed(
    *,
    product_id: str,
    old_stock: int,
    new_stock: int,
    cause: str,
    order_id: str = "",
    changed_by: str = "",
    reason: str = "",
) -> Message:
    return Message(
        CATALOG_TOPIC,
        "catalog.stock_changed",
        product_id,
        catalog_events_pb2.StockChanged(
            product_id=product_id,
            old_stock=old_stock,
            new_stock=new_stock,
            delta=new_stock - old_stock,
            cause=CAUSES[cause],
            order_id=order_id,
            changed_by=changed_by,
            reason=reason,
        ),
    )


def stock_low(*, product_id: str, sku: str, name: str, stock: int, threshold: int) -> Message:
    return Message(
        CATALOG_TOPIC,
        "catalog.stock_low",
        product_id,
        catalog_events_pb2.StockLow(
            product_id=product_id, sku=sku, name=name, stock=stock, low_stock_threshold=threshold
        ),
    )


# -- inventory.events (answers to the saga) --------------------------------------------------------


def _reply(order_id: str, event_type: str, payload: Any, reply_to: ReplyTo) -> Message:
    cause = Cause(reply_to.causation_id, reply_to.correlation_id or order_id)
    return Message(INVENTORY_EVENTS, event_type, order_id, payload, cause)


def stock_reserved(
    order_id: str, lines: Sequence[Line], expires_at: datetime | None, reply_to: ReplyTo
) -> Message:
    payload = inventory_events_pb2.StockReserved(order_id=order_id, lines=_lines(lines))
    if expires_at is not None:
        payload.expires_at.CopyFrom(_timestamp(expires_at))
    return _reply(order_id, "inventory.stock_reserved", payload, reply_to)


def rejection(order_id: str, rejected: Sequence[RejectedLine]) -> bytes:
    """The StockRejected payload, kept with the order so that a repeated command replays it."""
    return inventory_events_pb2.StockRejected(
        order_id=order_id,
        lines=[
            inventory_events_pb2.RejectedStockLine(
                product_id=line.product_id,
                requested=line.requested,
                available=line.available,
                reason=REJECTION_REASONS[line.reason],
            )
            for line in rejected
        ],
    ).SerializeToString()


def stock_rejected(order_id: str, stored: bytes, reply_to: ReplyTo) -> Message:
    payload = inventory_events_pb2.StockRejected.FromString(stored)
    return _reply(order_id, "inventory.stock_rejected", payload, reply_to)


def stock_released(order_id: str, lines: Sequence[Line], reason: str, reply_to: ReplyTo) -> Message:
    payload = inventory_events_pb2.StockReleased(order_id=order_id, lines=_lines(lines), reason=reason)
    return _reply(order_id, "inventory.stock_released", payload, reply_to)


def stock_committed(order_id: str, lines: Sequence[Line], reply_to: ReplyTo) -> Message:
    payload = inventory_events_pb2.StockCommitted(order_id=order_id, lines=_lines(lines))
    return _reply(order_id, "inventory.stock_committed", payload, reply_to)


def reservation_expired(
    order_id: str, lines: Sequence[Line], expired_at: datetime, reply_to: ReplyTo
) -> Message:
    payload = inventory_events_pb2.ReservationExpired(
        order_id=order_id, lines=_lines(lines), expired_at=_timestamp(expired_at)
    )
    return _reply(order_id, "inventory.reservation_expired", payload, reply_to)
