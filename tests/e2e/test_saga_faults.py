"""The saga under faults, with every service in its own process: every command and reply delivered
twice, the order service killed with SIGKILL in the middle of 50 sagas, and the broker restarted
in the middle of sagas. Afterwards every order is CONFIRMED or CANCELLED, the stock sold is the
stock of the CONFIRMED orders, and exactly the CONFIRMED orders hold a successful payment."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.message import Message
from sqlalchemy.engine import make_url

from ecommerce.events.v1 import envelope_pb2, inventory_events_pb2, payment_events_pb2
from servicekit.kafka import create_producer, new_envelope
from tests.e2e.test_account_graphql import admin_session
from tests.e2e.test_catalog_graphql import new_category
from tests.e2e.test_order_saga import CANCEL, ORDER, customer, order_input, product, settled, stock
from tests.helpers import eventually

CREATE_ORDER_ID = """
mutation CreateOrder($input: CreateOrderInput!) { createOrder(input: $input) { id } }"""
SAGA_TOPICS = ("inventory.commands", "payment.commands", "inventory.events", "payment.events")
# Who consumes each topic (their inbox consumer name and database).
CONSUMERS = {
    "inventory.commands": ("catalog", "catalog"),
    "payment.commands": ("payment", "payment"),
    "inventory.events": ("order", "order-saga"),
    "payment.events": ("order", "order-saga"),
}


@pytest.fixture(scope="module")
async def shop(gateway) -> dict:
    admin = (await admin_session(gateway))["accessToken"]
    return {"admin": admin, "category": await new_category(gateway, admin, "Faults")}


async def place_many(gateway, shoppers: list[str], lines, tokens: list[str]) -> list[tuple[str, str]]:
    """Place one order per payment token, round-robin over the shoppers; (order id, shopper token)."""

    async def one(i: int, payment: str) -> tuple[str, str]:
        shopper = shoppers[i % len(shoppers)]
        body = await gateway.post(CREATE_ORDER_ID, {"input": order_input(lines, payment)}, token=shopper)
        assert "errors" not in body, body
        return body["data"]["createOrder"]["id"], shopper

    return list(await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens))))


async def read_when_reachable(gateway, token: str, order_id: str) -> dict | None:
    """The order, or None while the gateway cannot reach the order service (it is restarting)."""
    body = await gateway.post(ORDER, {"id": order_id}, token=token)
    if body.get("errors"):
        assert body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE", body
        return None
    return body["data"]["order"]


async def all_settled(gateway, placed: list[tuple[str, str]], *, timeout: float) -> list[dict]:
    """Every order once it is CONFIRMED or CANCELLED and its payment no longer moves."""
    final: dict[str, dict] = {}

    async def done() -> bool:
        for order_id, token in placed:
            if order_id in final:
                continue
            order = await read_when_reachable(gateway, token, order_id)
            if order is None or order["status"] not in ("CONFIRMED", "CANCELLED"):
                return False
            payment = (order["payment"] or {}).get("status")
            # Confirmed orders are paid; cancelled ones end with no charge standing.
            if (order["status"] == "CONFIRMED") != (payment == "SUCCEEDED") or payment == "PENDING":
                return False
            final[order_id] = order
        return True

    await eventually(done, timeout=timeout, interval=0.25, what=f"{len(placed)} orders settled")
    return [final[order_id] for order_id, _ in placed]


async def assert_balanced(gateway, orders: list[dict], product_id: str, initial_stock: int) -> Counter:
    """Stock conservation and one successful payment per CONFIRMED order; returns the outcomes."""
    confirmed = [o for o in orders if o["status"] == "CONFIRMED"]
    sold = sum(item["quantity"] for o in confirmed for item in o["items"])

    async def conserved() -> bool:
        return await stock(gateway, product_id) == initial_stock - sold

    await eventually(conserved, timeout=60, interval=0.25, what="stock to equal initial minus sold")
    assert all(o["payment"]["status"] == "SUCCEEDED" for o in confirmed)
    assert all(
        (o["payment"] or {}).get("status") in (None, "FAILED", "VOIDED") for o in orders if o not in confirmed
    )
    assert all([h["status"] for h in o["history"]][-1] == o["status"] for o in orders)
    return Counter((o["status"], o["cancellationReason"]) for o in orders)


# -- duplicate delivery -------------------------------------------------------------------------------


async def saga_records(bootstrap: str, order_ids: set[str]) -> list[tuple[str, object]]:
    """Every record of these orders on the saga's four topics, as it was delivered."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        await reader.topics()  # loads the cluster's metadata
        partitions = [
            TopicPartition(topic, p)
            for topic in SAGA_TOPICS
            for p in sorted(reader.partitions_for_topic(topic) or ())
        ]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        ends = await reader.end_offsets(partitions)
        records: list[tuple[str, object]] = []

        async def read_to_end() -> bool:
            for batch in (await reader.getmany(timeout_ms=200)).values():
                records.extend((r.topic, r) for r in batch)
            positions = [await reader.position(tp) for tp in partitions]
            return all(position >= ends[tp] for position, tp in zip(positions, partitions, strict=True))

        await eventually(read_to_end, timeout=30, what="the saga topics read to their end")
    finally:
        await reader.stop()
    mine = []
    for topic, record in records:
        envelope = envelope_pb2.EventEnvelope.FromString(record.value)  # type: ignore[attr-defined]
        if envelope.aggregate_id in order_ids:
            mine.append((topic, record))
    return mine


def marker(topic: str) -> tuple[str, Message]:
    """A harmless message for a topic's consumer: an answer or command about an order nobody has."""
    nobody = str(uuid.uuid4())
    return {
        "inventory.commands": ("inventory.release_stock", inventory_events_pb2.ReleaseStock(order_id=nobody)),
        "payment.commands": ("payment.void_payment", payment_events_pb2.VoidPayment(order_id=nobody)),
        "inventory.events": ("inventory.stock_released", inventory_events_pb2.StockReleased(order_id=nobody)),
        "payment.events": ("payment.voided", payment_events_pb2.PaymentVoided(order_id=nobody)),
    }[topic]


async def in_inbox(infra, service: str, consumer: str, event_ids: list[str]) -> int:
    url = make_url(infra.database_url(service)).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM inbox WHERE consumer = $1 AND event_id = ANY($2::text[])",
            consumer,
            event_ids,
        )
    finally:
        await conn.close()


async def test_every_command_and_reply_delivered_twice_has_one_effect(gateway, shop):
    lamp = await product(gateway, shop, stock=10)
    shopper = await customer(gateway)
    placed = await place_many(gateway, [shopper], [(lamp, 2)], ["tok_visa", "tok_visa", "tok_chargeDeclined"])
    before = await all_settled(gateway, placed, timeout=60)
    refunded = placed[1][0]
    await gateway.post(CANCEL, {"id": refunded}, token=shopper)
    before[1] = await settled(gateway, shopper, refunded, payment="REFUNDED")
    bootstrap = gateway.platform.infra.kafka_bootstrap_servers
    expected = {
        # reserve x3, commit x2, release x2 (declined, cancelled) / authorize x3, refund x1 / replies
        "inventory.commands": 7,
        "payment.commands": 4,
        "inventory.events": 7,
        "payment.events": 4,
    }

    async def every_reply_out() -> list[tuple[str, object]] | None:
        # The refund settles the order while the cancelled order's release may still be on its
        # way to the catalog: wait for its reply, which the catalog sends with the stock change.
        records = await saga_records(bootstrap, {order_id for order_id, _ in placed})
        replies = Counter(t for t, _ in records)["inventory.events"]
        return records if replies >= expected["inventory.events"] else None

    records = await eventually(every_reply_out, timeout=30, what="the sagas' last reply")
    assert Counter(t for t, _ in records) == expected
    stock_before = await stock(gateway, lamp)

    producer = create_producer(bootstrap, idempotent=False, client_id="saga-faults-duplicates")
    await producer.start()
    try:
        for topic, record in records:
            await producer.send_and_wait(
                topic,
                record.value,
                key=record.key,
                headers=list(record.headers or ()),  # type: ignore[attr-defined]
            )
        # One marker per partition, after the duplicates: once its consumer has it, it has them.
        markers: dict[str, list[str]] = {}
        for topic in SAGA_TOPICS:
            for partition in sorted(await producer.partitions_for(topic)):
                event_type, payload = marker(topic)
                envelope = new_envelope(
                    event_type=event_type, aggregate_id=payload.order_id, producer="test", payload=payload
                )
                await producer.send_and_wait(
                    topic, envelope.SerializeToString(), key=payload.order_id.encode(), partition=partition
                )
                markers.setdefault(topic, []).append(envelope.event_id)
    finally:
        await producer.stop()
    for topic, event_ids in markers.items():
        service, consumer = CONSUMERS[topic]

        async def handled(service=service, consumer=consumer, event_ids=event_ids) -> bool:
            return await in_inbox(gateway.platform.infra, service, consumer, event_ids) == len(event_ids)

        await eventually(handled, timeout=60, interval=0.2, what=f"the markers on {topic} handled")

    after = [await settled(gateway, shopper, order_id) for order_id, _ in placed]
    assert [(o["status"], o["history"], o["payment"]) for o in after] == [
        (o["status"], o["history"], o["payment"]) for o in before
    ]
    assert await stock(gateway, lamp) == stock_before == 10 - 2


# -- a crash of the orchestrator ----------------------------------------------------------------------


async def test_the_order_service_killed_in_the_middle_of_fifty_sagas_loses_no_order(gateway, shop):
    lamp = await product(gateway, shop, stock=40)
    shoppers = [await customer(gateway) for _ in range(5)]
    tokens = ["tok_chargeDeclined" if i % 10 == 0 else "tok_visa" for i in range(50)]
    placed = await place_many(gateway, shoppers, [(lamp, 1)], tokens)

    await gateway.platform.restart("order", kill=True)

    orders = await all_settled(gateway, placed, timeout=120)
    outcomes = await assert_balanced(gateway, orders, lamp, 40)
    # The crash delayed orders but cancelled none: every cancellation is the customer's card or
    # the shelf (declined orders hold their units until they are released).
    assert set(outcomes) <= {
        ("CONFIRMED", None),
        ("CANCELLED", "OUT_OF_STOCK"),
        ("CANCELLED", "PAYMENT_DECLINED"),
    }
    declined = [o for o, t in zip(orders, tokens, strict=True) if t == "tok_chargeDeclined"]
    assert all(o["status"] == "CANCELLED" for o in declined)
    assert outcomes[("CONFIRMED", None)] + await stock(gateway, lamp) == 40


# -- a restart of the broker (memory-only: it forgets topics, offsets and groups) ----------------------


async def test_the_broker_restarted_in_the_middle_of_sagas_every_order_still_finishes(gateway, shop):
    infra = gateway.platform.infra
    if infra.broker is None:
        pytest.skip(
            "the broker is external (KAFKA_BOOTSTRAP_SERVERS); only the embedded one is restarted here"
        )
    lamp = await product(gateway, shop, stock=30)
    shoppers = [await customer(gateway) for _ in range(3)]
    tokens = ["tok_chargeDeclined" if i % 5 == 0 else "tok_visa" for i in range(20)]

    placed = await place_many(gateway, shoppers, [(lamp, 1)], tokens[:10])
    await asyncio.to_thread(infra.broker.stop)
    # Orders placed while it is down are certainly in the middle of their sagas when it returns.
    placed += await place_many(gateway, shoppers, [(lamp, 1)], tokens[10:])
    await asyncio.to_thread(infra.broker.start)

    orders = await all_settled(gateway, placed, timeout=150)
    outcomes = await assert_balanced(gateway, orders, lamp, 30)
    # Sagas resume, not just end: every good card is confirmed once the broker is back.
    assert outcomes == {("CONFIRMED", None): 16, ("CANCELLED", "PAYMENT_DECLINED"): 4}
    after = await place_many(gateway, shoppers[:1], [(lamp, 1)], ["tok_visa"])
    assert [o["status"] for o in await all_settled(gateway, after, timeout=60)] == ["CONFIRMED"]
