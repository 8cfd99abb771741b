"""No client of the platform has the broker create a topic by naming it: topics come from
`ensure_topics` (the create-topics command, the relays, the consumers' dead letters), with the
platform's partition count. A consumer started before its topic exists reads it once it is made."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from servicekit.kafka import dead_letter_topic, ensure_topics
from tests.helpers import eventually
from tests.integration.outbox.kit import kit_consumer, read_all, running, send_registered


async def _partitions(bootstrap: str, topic: str) -> int | None:
    """How many partitions the broker lists for `topic` (None: it does not have it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return None
        [described] = await admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        await admin.close()


async def test_a_producer_or_consumer_naming_a_missing_topic_does_not_create_it(kit):
    missing = f"kit-missing-{uuid.uuid4().hex[:8]}"
    # Gives up on the missing topic's metadata after a second.
    producer = AIOKafkaProducer(bootstrap_servers=kit["bootstrap"], request_timeout_ms=1_000)
    await producer.start()
    try:
        with pytest.raises(KafkaError):
            await producer.partitions_for(missing)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kit["bootstrap"], enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.subscribe([missing])
        await consumer.getmany(timeout_ms=500)  # its metadata request names the topic
    finally:
        await consumer.stop()

    assert await _partitions(kit["bootstrap"], missing) is None


async def test_an_event_consumer_started_before_its_topic_reads_it_once_made(kit):
    """The consumer neither creates its topic (it would have the broker's partition count) nor
    misses it when it is created later (a relay re-creating what a restarted broker lost)."""
    topic = f"kit-later-{uuid.uuid4().hex[:8]}"
    handled: list[str] = []

    async def handle(session, envelope) -> None:
        handled.append(envelope.event_id)

    consumer = kit_consumer(kit, topic, handle)
    async with running(consumer.run):

        async def started() -> bool:
            return consumer._consumer is not None

        await eventually(started, what="the consumer started")
        await ensure_topics(kit["bootstrap"], [topic, dead_letter_topic(topic)], partitions=2)
        event_id = await send_registered(kit, topic, str(uuid.uuid4()))

        async def read() -> bool:
            return handled == [event_id]

        await eventually(read, timeout=20, what="the event on the topic made after the start")

    assert await _partitions(kit["bootstrap"], topic) == 2


async def test_a_dead_letter_topic_the_broker_lost_is_made_like_its_source(kit):
    topic = f"kit-nodlq-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kit["bootstrap"], [topic], partitions=2)  # without its dead-letter topic
    await kit["producer"].send_and_wait(topic, b"\x00not an envelope", key=b"k")

    async def never(session, envelope) -> None:
        raise AssertionError("nothing readable was sent")

    consumer = kit_consumer(kit, topic, never)
    async with running(consumer.run):
        [copy] = await read_all(kit["bootstrap"], dead_letter_topic(topic), 1, timeout=20)

    assert copy.value == b"\x00not an envelope"
    assert await _partitions(kit["bootstrap"], dead_letter_topic(topic)) == 2
