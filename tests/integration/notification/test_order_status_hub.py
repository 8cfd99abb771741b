"""The gateway's live order status hub against a real broker: every gateway instance reads every
`order.status_changed` (no consumer group), and hands it to the subscriptions of that order only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from ecommerce.events.v1 import order_events_pb2
from ecommerce.order.v1 import order_pb2
from gateway.live import OrderEventHub
from servicekit.embedded import EmbeddedBroker
from servicekit.kafka import all_topics, create_producer, ensure_topics, new_envelope


@pytest.fixture
async def hubs(notification_broker: EmbeddedBroker) -> AsyncIterator[tuple[OrderEventHub, OrderEventHub]]:
    """Two gateway instances' hubs, positioned at the end of order.events."""
    await ensure_topics(notification_broker.bootstrap_servers, all_topics(), partitions=3)
    first = OrderEventHub(notification_broker.bootstrap_servers)
    second = OrderEventHub(notification_broker.bootstrap_servers)
    first.start()
    second.start()
    try:
        assert await first.wait_ready(15)
        assert await second.wait_ready(15)
        yield first, second
    finally:
        await first.stop()
        await second.stop()


async def publish(
    bootstrap: str, order_id: str, new_status: int, event_type: str = "order.status_changed"
) -> None:
    producer = create_producer(bootstrap, idempotent=False, client_id="hub-it")
    await producer.start()
    try:
        payload = order_events_pb2.OrderStatusChanged(
            order_id=order_id, account_id=str(uuid.uuid4()), new_status=new_status
        )
        envelope = new_envelope(
            event_type=event_type, aggregate_id=order_id, producer="order", payload=payload
        )
        await producer.send_and_wait("order.events", envelope.SerializeToString(), key=order_id.encode())
    finally:
        await producer.stop()


async def test_every_gateway_instance_hears_every_transition_of_a_watched_order(
    hubs: tuple[OrderEventHub, OrderEventHub], notification_broker: EmbeddedBroker
):
    first, second = hubs
    watched, other = str(uuid.uuid4()), str(uuid.uuid4())

    with first.subscribe(watched) as one, second.subscribe(watched) as two, first.subscribe(other) as three:
        await publish(notification_broker.bootstrap_servers, watched, order_pb2.ORDER_STATUS_AWAITING_PAYMENT)
        await publish(notification_broker.bootstrap_servers, watched, order_pb2.ORDER_STATUS_CONFIRMED)

        for queue in (one, two):
            received = [await asyncio.wait_for(queue.get(), 10), await asyncio.wait_for(queue.get(), 10)]
            assert [(c.order_id, c.new_status) for c in received] == [
                (watched, order_pb2.ORDER_STATUS_AWAITING_PAYMENT),
                (watched, order_pb2.ORDER_STATUS_CONFIRMED),
            ]
        assert three.empty()

    assert first.subscriptions == second.subscriptions == 0


async def test_other_order_events_are_not_signals(
    hubs: tuple[OrderEventHub, OrderEventHub], notification_broker: EmbeddedBroker
):
    first, _ = hubs
    order_id = str(uuid.uuid4())
    with first.subscribe(order_id) as queue:
        await publish(
            notification_broker.bootstrap_servers,
            order_id,
            order_pb2.ORDER_STATUS_CONFIRMED,
            "order.confirmed",
        )
        await publish(notification_broker.bootstrap_servers, order_id, order_pb2.ORDER_STATUS_SHIPPED)

        change = await asyncio.wait_for(queue.get(), 10)

        assert change.new_status == order_pb2.ORDER_STATUS_SHIPPED
        assert queue.empty()
