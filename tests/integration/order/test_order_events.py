"""What an order publishes on order.events: exactly one message per transition, the placing and
the milestones carrying the order's details, the steps between them not."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from ecommerce.events.v1 import inventory_events_pb2 as inv
from ecommerce.events.v1 import order_events_pb2
from ecommerce.events.v1 import payment_events_pb2 as pay
from ecommerce.order.v1 import order_pb2
from servicekit.kafka import unpack
from tests.helpers import sql_sent
from tests.integration.order.test_order_saga import (
    confirmed_order,
    handled,
    history,
    settle_compensations,
    wait_status,
)

pytestmark = pytest.mark.usefixtures("orders")

S = order_pb2


async def order_events(orders, order_id: str) -> list[str]:
    rows = await orders.execute(
        "SELECT event_type FROM outbox WHERE key = :id AND topic = 'order.events' ORDER BY id", id=order_id
    )
    return [row[0] for row in rows]


async def changes(orders, order_id: str, count: int) -> list[order_events_pb2.OrderStatusChanged]:
    envelopes = await orders.bus.wait_for(order_id, "order.status_changed", count=count)
    return [unpack(e, order_events_pb2.OrderStatusChanged) for e in envelopes]


async def test_a_confirmed_order_publishes_one_message_per_transition(orders):
    order_id, account_id, _ = await confirmed_order(orders)

    assert [h[0] for h in await history(orders, order_id)] == ["PENDING", "AWAITING_PAYMENT", "CONFIRMED"]
    assert await order_events(orders, order_id) == ["order.status_changed"] * 3
    placed, awaiting, confirmed = await changes(orders, order_id, 3)
    assert [(c.old_status, c.new_status) for c in (placed, awaiting, confirmed)] == [
        (S.ORDER_STATUS_UNSPECIFIED, S.ORDER_STATUS_PENDING),
        (S.ORDER_STATUS_PENDING, S.ORDER_STATUS_AWAITING_PAYMENT),
        (S.ORDER_STATUS_AWAITING_PAYMENT, S.ORDER_STATUS_CONFIRMED),
    ]
    # The placing and the milestone carry the details; the step between them does not.
    assert [c.HasField("details") for c in (placed, awaiting, confirmed)] == [True, False, True]
    assert {c.account_id for c in (placed, awaiting, confirmed)} == {account_id}
    assert confirmed.details.payment_id == "pay-" + order_id[:8]
    assert (confirmed.details.total.amount_minor, confirmed.details.subtotal.amount_minor) == (3000, 3000)
    assert confirmed.details.shipping_address.city
    assert placed.details.payment_id == ""


async def test_a_shipped_delivered_order_publishes_one_message_per_milestone(orders):
    order_id, _, _ = await confirmed_order(orders)
    _, admin = orders.token(role="ADMIN")

    await orders.stub.ShipOrder(order_pb2.ShipOrderRequest(order_id=order_id), metadata=admin)
    await orders.stub.DeliverOrder(order_pb2.DeliverOrderRequest(order_id=order_id), metadata=admin)

    assert await order_events(orders, order_id) == ["order.status_changed"] * 5
    *_, shipped, delivered = await changes(orders, order_id, 5)
    assert (shipped.new_status, delivered.new_status) == (S.ORDER_STATUS_SHIPPED, S.ORDER_STATUS_DELIVERED)
    assert [len(c.details.items) for c in (shipped, delivered)] == [1, 1]


async def test_a_cancelled_paid_order_says_why_and_that_a_refund_follows(orders):
    order_id, _, metadata = await confirmed_order(orders)

    await orders.stub.CancelOrder(
        order_pb2.CancelOrderRequest(order_id=order_id, note="changed my mind"), metadata=metadata
    )
    await settle_compensations(orders, order_id)

    # The compensations' replies change no status: nothing more is published.
    assert await order_events(orders, order_id) == ["order.status_changed"] * 4
    *_, cancelled = await changes(orders, order_id, 4)
    assert (cancelled.old_status, cancelled.new_status) == (
        S.ORDER_STATUS_CONFIRMED,
        S.ORDER_STATUS_CANCELLED,
    )
    assert cancelled.cancellation_reason == S.CANCELLATION_REASON_CUSTOMER_CANCELLED
    assert cancelled.details.refund_expected is True
    assert len(cancelled.details.items) == 1


@contextlib.contextmanager
def row_locks(orders, order_id: str) -> Iterator[list[str]]:
    """Every statement that locks the order's row meanwhile (the saga timer's scan for due
    sagas, which locks other rows, runs beside it)."""
    locks: list[str] = []
    with sql_sent(orders.app.runtime.engine) as sent:
        yield locks
    for sql, parameters in sent:
        many = bool(parameters) and isinstance(parameters[0], tuple | list)  # an executemany
        values = set() if many else {str(value) for value in parameters or ()}
        if "FROM orders" in sql and "FOR UPDATE" in sql and order_id in values:
            locks.append(sql)


async def test_an_admins_refund_is_ignored_without_locking_the_order(orders):
    order_id, _, _ = await confirmed_order(orders)
    admin_refund = pay.PaymentRefunded(order_id=order_id, refunded_by=str(uuid.uuid4()), reason="goodwill")

    with row_locks(orders, order_id) as locks:
        await handled(orders, await orders.bus.reply("payment.refunded", order_id, admin_refund))

    assert locks == []
    assert await order_events(orders, order_id) == ["order.status_changed"] * 3


async def test_the_sagas_refund_answered_after_an_admins_still_settles_the_cancellation(orders):
    order_id, _, metadata = await confirmed_order(orders)
    await orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=order_id), metadata=metadata)
    [command] = await orders.bus.wait_for(order_id, "payment.refund_payment")
    [release] = await orders.bus.wait_for(order_id, "inventory.release_stock")
    await orders.bus.reply(
        "inventory.stock_released",
        order_id,
        inv.StockReleased(order_id=order_id),
        causation_id=release.event_id,
    )

    # The payment had been refunded by an admin: the saga's command is answered with that refund.
    answer = pay.PaymentRefunded(order_id=order_id, refunded_by=str(uuid.uuid4()))
    with row_locks(orders, order_id) as locks:
        await orders.bus.reply("payment.refunded", order_id, answer, causation_id=command.event_id)
        await wait_status(orders, order_id, "CANCELLED", settled=True)

    assert locks
