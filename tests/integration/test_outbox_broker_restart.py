"""The outbox relay across a restart of the memory-only embedded broker, which forgets its topics.

Without help, the first writes after the restart go to topics that do not exist, which the broker
accepts into a limbo that no consumer ever reads; the relay re-creates missing topics first."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import MetaData

from ecommerce.events.v1 import account_events_pb2
from servicekit.db import create_engine, database_url, ensure_database, session_factory, transaction
from servicekit.embedded import EmbeddedBroker
from servicekit.kafka import create_producer, dead_letter_topic, ensure_topics
from servicekit.messages import Message
from servicekit.outbox import Outbox, OutboxRelay, outbox_table
from tests.helpers import eventually, group_timeouts

metadata = MetaData()
outbox = outbox_table(metadata)
TOPIC = "restart.events"


@pytest.fixture
async def restartable(infra, data_dir: Path) -> AsyncIterator[dict]:
    broker = EmbeddedBroker(data_dir / f"restart-broker-{uuid.uuid4().hex[:6]}").start()
    url = database_url(infra.postgres_url, "outbox_restart_it")
    await ensure_database(url)
    engine = create_engine(url, pool_size=4)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    producer = create_producer(broker.bootstrap_servers, idempotent=False, client_id="restart-it")
    await producer.start()
    await ensure_topics(broker.bootstrap_servers, [TOPIC], partitions=3)
    sessions = session_factory(engine)
    relay = OutboxRelay(
        sessions=sessions,
        table=outbox,
        producer=producer,
        database_url=url,
        poll_interval=0.1,
        recreate_topics_with_partitions=3,
        bootstrap_servers=broker.bootstrap_servers,
    )
    task = asyncio.create_task(relay.run())
    try:
        yield {"broker": broker, "sessions": sessions, "outbox": Outbox(outbox, "restart-it")}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()
        await engine.dispose()
        broker.stop()


async def publish(kit: dict, marker: str) -> None:
    async with transaction(kit["sessions"]) as session:
        await kit["outbox"].add(
            session,
            Message(
                topic=TOPIC,
                event_type="test.registered",
                aggregate_id=marker,
                payload=account_events_pb2.AccountRegistered(account_id=marker),
            ),
        )


async def test_the_relay_recreates_forgotten_topics_and_consumers_read_on(restartable):
    broker: EmbeddedBroker = restartable["broker"]
    seen: list[bytes] = []
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=broker.bootstrap_servers,
        group_id="restart-it",
        auto_offset_reset="earliest",
        **group_timeouts(),
    )
    await consumer.start()

    async def collect() -> None:
        async for record in consumer:
            seen.append(record.key or b"")

    reader = asyncio.create_task(collect())
    try:
        await publish(restartable, "before")
        await eventually(lambda: asyncio.sleep(0, b"before" in seen), timeout=30, what="the first event read")

        await asyncio.to_thread(broker.restart)
        await publish(restartable, "after")

        await eventually(
            lambda: asyncio.sleep(0, b"after" in seen), timeout=60, what="the event after the restart"
        )
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        described = {
            t["topic"]: len(t["partitions"])
            for t in await admin.describe_topics([TOPIC, dead_letter_topic(TOPIC)])
        }
    finally:
        await admin.close()
    assert described == {TOPIC: 3, dead_letter_topic(TOPIC): 3}


async def test_events_the_broker_lost_unread_are_published_again_even_by_an_idle_relay(restartable):
    """The broker acknowledged the event, then lost it with its memory before anyone read it. The
    relay, with nothing new to publish, notices the forgotten topic and publishes it again."""
    broker: EmbeddedBroker = restartable["broker"]
    await publish(restartable, "unread")

    async def published() -> bool:
        async with restartable["sessions"]() as session:
            rows = await session.execute(outbox.select().where(outbox.c.key == "unread"))
            return all(row.published_at is not None for row in rows)

    await eventually(published, what="the event published once")
    await asyncio.to_thread(broker.restart)

    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=broker.bootstrap_servers,
        group_id="late-reader",
        auto_offset_reset="earliest",
        **group_timeouts(),
    )

    async def topic_back() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        try:
            return TOPIC in await admin.list_topics()
        finally:
            await admin.close()

    await eventually(topic_back, timeout=30, what="the relay to re-create the topic")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert record.key == b"unread"
