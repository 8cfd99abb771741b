"""The saga's inventory commands and answers, as the order service sends and reads them."""

from __future__ import annotations

from google.protobuf.message import Message

from ecommerce.events.v1 import envelope_pb2, inventory_events_pb2

RESERVE = "inventory.reserve_stock"
RELEASE = "inventory.release_stock"
COMMIT = "inventory.commit_stock"
ANSWERS: dict[str, type[Message]] = {
    "inventory.stock_reserved": inventory_events_pb2.StockReserved,
    "inventory.stock_rejected": inventory_events_pb2.StockRejected,
    "inventory.stock_released": inventory_events_pb2.StockReleased,
    "inventory.stock_committed": inventory_events_pb2.StockCommitted,
    "inventory.reservation_expired": inventory_events_pb2.ReservationExpired,
}


def reserve_command(order_id: str, lines: list[tuple[str, int]]) -> inventory_events_pb2.ReserveStock:
    return inventory_events_pb2.ReserveStock(
        order_id=order_id,
        lines=[inventory_events_pb2.StockLine(product_id=p, quantity=q) for p, q in lines],
    )


def release_command(order_id: str, reason: str = "") -> inventory_events_pb2.ReleaseStock:
    return inventory_events_pb2.ReleaseStock(order_id=order_id, reason=reason)


def commit_command(order_id: str) -> inventory_events_pb2.CommitStock:
    return inventory_events_pb2.CommitStock(order_id=order_id)


def payload(envelope: envelope_pb2.EventEnvelope):  # type: ignore[no-untyped-def]
    """The typed answer inside an envelope."""
    message = ANSWERS[envelope.event_type]()
    assert envelope.payload.Unpack(message)
    return message
