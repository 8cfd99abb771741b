"""What the catalog publishes: facts about products and stock, and its answers to the saga.

Catalog facts go to `catalog.events` keyed by product id. Answers to the saga's inventory
commands go to `inventory.events` keyed by order id, caused by the command they answer
(`servicekit.messages.Cause`); an expiry the sweeper finds answers no command (`NO_CAUSE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.message import Message as Payload

from catalog.convert import product_to_proto
from catalog.views import Line, ProductView, RejectedLine, StockMove
from ecommerce.events.v1 import catalog_events_pb2, inventory_events_pb2
from servicekit.messages import Cause, Message
from servicekit.timestamps import to_timestamp
from servicekit.topics import CATALOG_EVENTS, INVENTORY_EVENTS, CatalogEvent, InventoryEvent

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
    "VARIANT_REQUIRED": inventory_events_pb2.STOCK_REJECTION_REASON_VARIANT_REQUIRED,
    "VARIANT_NOT_FOUND": inventory_events_pb2.STOCK_REJECTION_REASON_VARIANT_NOT_FOUND,
    "INVALID_QUANTITY": inventory_events_pb2.STOCK_REJECTION_REASON_UNSPECIFIED,
}


def _lines(lines: Sequence[Line]) -> list[inventory_events_pb2.StockLine]:
    return [
        inventory_events_pb2.StockLine(
            product_id=line.product_id, quantity=line.quantity, variant_id=line.variant_id
        )
        for line in lines
    ]


def _fact(event_type: CatalogEvent, product_id: str, payload: Payload) -> Message:
    return Message(CATALOG_EVENTS, event_type, product_id, payload)


def _answer(event_type: InventoryEvent, order_id: str, payload: Payload, cause: Cause) -> Message:
    """An answer in the order's flow: the cause's, or one named by the order id."""
    return Message(INVENTORY_EVENTS, event_type, order_id, payload, cause)


def product_created(product: ProductView) -> Message:
    return _fact(
        CatalogEvent.PRODUCT_CREATED,
        product.id,
        catalog_events_pb2.ProductCreated(product=product_to_proto(product)),
    )


def product_updated(product: ProductView, changed_fields: Sequence[str]) -> Message:
    return _fact(
        CatalogEvent.PRODUCT_UPDATED,
        product.id,
        catalog_events_pb2.ProductUpdated(
            product=product_to_proto(product), changed_fields=list(changed_fields)
        ),
    )


def product_archived(product_id: str, sku: str, archived_at: datetime) -> Message:
    return _fact(
        CatalogEvent.PRODUCT_ARCHIVED,
        product_id,
        catalog_events_pb2.ProductArchived(
            product_id=product_id, sku=sku, archived_at=to_timestamp(archived_at)
        ),
    )


def stock_changed(
    move: StockMove, *, cause: str, order_id: str = "", changed_by: str = "", reason: str = ""
) -> Message:
    """`cause` is one of CAUSES: ADJUSTMENT, RESERVATION, RELEASE or EXPIRY."""
    return _fact(
        CatalogEvent.STOCK_CHANGED,
        move.product_id,
        catalog_events_pb2.StockChanged(
            product_id=move.product_id,
            old_stock=move.old,
            new_stock=move.new,
            delta=move.new - move.old,
            cause=CAUSES[cause],
            order_id=order_id,
            changed_by=changed_by,
            reason=reason,
            variant_id=move.variant_id,
            sku=move.sku,
        ),
    )


def stock_low(move: StockMove) -> Message:
    return _fact(
        CatalogEvent.STOCK_LOW,
        move.product_id,
        catalog_events_pb2.StockLow(
            product_id=move.product_id,
            sku=move.sku,
            name=move.name,
            stock=move.new,
            low_stock_threshold=move.threshold,
            variant_id=move.variant_id,
            variant_name=move.variant_name,
        ),
    )


def stock_reserved(
    order_id: str, lines: Sequence[Line], expires_at: datetime | None, cause: Cause
) -> Message:
    payload = inventory_events_pb2.StockReserved(order_id=order_id, lines=_lines(lines))
    if expires_at is not None:
        payload.expires_at.CopyFrom(to_timestamp(expires_at))
    return _answer(InventoryEvent.STOCK_RESERVED, order_id, payload, cause)


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
                variant_id=line.variant_id,
            )
            for line in rejected
        ],
    ).SerializeToString()


def stock_rejected(order_id: str, stored: bytes, cause: Cause) -> Message:
    """The rejection as `rejection` stored it."""
    payload = inventory_events_pb2.StockRejected.FromString(stored)
    return _answer(InventoryEvent.STOCK_REJECTED, order_id, payload, cause)


def stock_released(order_id: str, lines: Sequence[Line], reason: str, cause: Cause) -> Message:
    payload = inventory_events_pb2.StockReleased(order_id=order_id, lines=_lines(lines), reason=reason)
    return _answer(InventoryEvent.STOCK_RELEASED, order_id, payload, cause)


def stock_committed(order_id: str, lines: Sequence[Line], cause: Cause) -> Message:
    payload = inventory_events_pb2.StockCommitted(order_id=order_id, lines=_lines(lines))
    return _answer(InventoryEvent.STOCK_COMMITTED, order_id, payload, cause)


def reservation_expired(order_id: str, lines: Sequence[Line], expired_at: datetime, cause: Cause) -> Message:
    payload = inventory_events_pb2.ReservationExpired(
        order_id=order_id, lines=_lines(lines), expired_at=to_timestamp(expired_at)
    )
    return _answer(InventoryEvent.RESERVATION_EXPIRED, order_id, payload, cause)
