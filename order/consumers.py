"""What the order service consumes: the saga's replies on `inventory.events` and `payment.events`,
and `account.deleted` on `account.events`.

Each reply is translated into a `domain` event and handed to the saga (`OrderService.handle_reply`)
in the consumer's transaction, with its inbox row. `account.deleted` is read by the same consumer
(order/erasure.py): its handler is one update in the batch's transaction with no follow-up, so it
fits the saga consumer's batching; the other account events have no handler and cost nothing. A
reply no saga asked for (an ADMIN's refund) is dropped before the order's row is locked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import Message as Payload
from sqlalchemy.ext.asyncio import AsyncSession

from ecommerce.events.v1 import envelope_pb2, inventory_events_pb2, payment_events_pb2
from ecommerce.payment.v1 import payment_pb2
from order import domain
from servicekit.inbox import Handler
from servicekit.kafka import unpack
from servicekit.topics import ACCOUNT_EVENTS, INVENTORY_EVENTS, PAYMENT_EVENTS, InventoryEvent, PaymentEvent

log = logging.getLogger(__name__)

REPLY_TOPICS = (INVENTORY_EVENTS, PAYMENT_EVENTS)
TOPICS = (*REPLY_TOPICS, ACCOUNT_EVENTS)
CONSUMER_NAME = "order-saga"

REJECTION_NAMES = {
    inventory_events_pb2.STOCK_REJECTION_REASON_INSUFFICIENT_STOCK: "insufficient stock",
    inventory_events_pb2.STOCK_REJECTION_REASON_PRODUCT_NOT_FOUND: "product not found",
    inventory_events_pb2.STOCK_REJECTION_REASON_PRODUCT_ARCHIVED: "product archived",
}


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


REPLIES: dict[str, tuple[type[Payload], Translate]] = {
    InventoryEvent.STOCK_RESERVED: (inventory_events_pb2.StockReserved, lambda m: domain.StockReserved()),
    InventoryEvent.STOCK_REJECTED: (inventory_events_pb2.StockRejected, _rejected),
    InventoryEvent.STOCK_RELEASED: (inventory_events_pb2.StockReleased, lambda m: domain.StockReleased()),
    InventoryEvent.STOCK_COMMITTED: (inventory_events_pb2.StockCommitted, lambda m: domain.StockCommitted()),
    InventoryEvent.RESERVATION_EXPIRED: (
        inventory_events_pb2.ReservationExpired,
        lambda m: domain.ReservationExpired(),
    ),
    PaymentEvent.SUCCEEDED: (
        payment_events_pb2.PaymentSucceeded,
        lambda m: domain.PaymentSucceeded(payment_id=m.payment_id),
    ),
    PaymentEvent.FAILED: (payment_events_pb2.PaymentFailed, _failed),
    PaymentEvent.VOIDED: (
        payment_events_pb2.PaymentVoided,
        lambda m: domain.PaymentVoided(payment_id=m.payment_id),
    ),
    PaymentEvent.REFUNDED: (
        payment_events_pb2.PaymentRefunded,
        lambda m: domain.PaymentRefunded(payment_id=m.payment_id),
    ),
}


def unsolicited(envelope: envelope_pb2.EventEnvelope, message: Payload) -> bool:
    """An event on a reply topic that answers no saga command and that every saga ignores: an
    ADMIN's refund through PaymentService.RefundPayment (it names its admin and is caused by no
    command; the saga's own RefundPayment is answered with its causation id, even when an admin
    refunded first). Filtered before the order's row is locked."""
    return (
        envelope.event_type == PaymentEvent.REFUNDED
        and not envelope.causation_id
        and bool(getattr(message, "refunded_by", ""))
    )


def translate(envelope: envelope_pb2.EventEnvelope) -> tuple[str, domain.Event | None]:
    """The order id and domain event of a reply (None for an `unsolicited` one); ValueError for a
    payload of the wrong type."""
    message_type, convert = REPLIES[envelope.event_type]
    message = unpack(envelope, message_type)
    order_id = getattr(message, "order_id", "") or envelope.aggregate_id
    if unsolicited(envelope, message):
        return order_id, None
    return order_id, convert(message)


ReplyHandler = Callable[[AsyncSession, str, domain.Event, str], Awaitable[None]]


def handlers(handle: ReplyHandler) -> dict[str, Handler]:
    """The saga's replies, each translated and handed to `handle` in the consumer's transaction."""

    async def on_reply(session: AsyncSession, envelope: envelope_pb2.EventEnvelope) -> None:
        order_id, event = translate(envelope)
        if event is None:
            log.debug("%s %s answers no saga command: ignored", envelope.event_type, envelope.event_id)
            return
        await handle(session, order_id, event, envelope.event_id)

    return dict.fromkeys(REPLIES, on_reply)
