"""The outbox relay and the inbox consumer against real PostgreSQL and the real broker."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.engine import make_url

from ecommerce.events.v1 import account_events_pb2, envelope_pb2
from servicekit.db import transaction
from servicekit.embedded import EmbeddedBroker
from servicekit.kafka import RenewingProducer, create_producer, dead_letter_topic, new_envelope
from servicekit.outbox import NOTIFY_CHANNEL, OutboxRelay
from tests.helpers import eventually
from tests.integration.outbox.kit import (
    _published_after_retry,
    _unpublished,
    _value,
    add_registered,
    effects,
    kit_consumer,
    outbox,
    read_all,
    registered,
    running,
    send_registered,
    statements,
)


async def _failing_use_case(kit, topic: str) -> None:
    """A use case that adds an event, then fails: its transaction rolls back."""
    async with transaction(kit["sessions"]) as session:
        await add_registered(session, topic, "rolled-back", key="a")
        raise RuntimeError("the use case failed")


async def test_an_event_is_written_only_when_its_transaction_commits(kit, topic):
    with pytest.raises(RuntimeError):
        await _failing_use_case(kit, topic)

    async with kit["sessions"]() as session:
        assert (
            await session.scalar(select(func.count()).select_from(outbox).where(outbox.c.topic == topic)) == 0
        )


async def test_a_committed_transaction_wakes_the_relays_once_in_the_statement_of_its_first_event(kit, topic):
    """The NOTIFY rides on the first event's INSERT, once per transaction (and once more in a
    savepoint of its own); a rolled-back transaction wakes nobody; the rows are whole."""
    heard: list[str] = []
    listener = await asyncpg.connect(
        make_url(kit["url"]).set(drivername="postgresql").render_as_string(False)
    )
    try:
        await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(args[-1]))
        with statements(kit) as executed:
            async with transaction(kit["sessions"]) as session:
                for n in range(3):
                    await add_registered(session, topic, f"committed-{n}", key="a")
                async with session.begin_nested():
                    await add_registered(session, topic, "in-a-savepoint", key="a")
        notifying = [sql for sql, _ in executed if "pg_notify" in sql]
        assert len(notifying) == 2
        assert all("INSERT INTO outbox" in sql for sql in notifying)
        assert sum(sql.lstrip().upper().startswith(("INSERT", "WITH")) for sql, _ in executed) == 4

        async def notified() -> bool:
            return len(heard) >= 1

        await eventually(notified, what="the commit's NOTIFY")
        with pytest.raises(RuntimeError):
            await _failing_use_case(kit, topic)
        # A NOTIFY sent after the rolled-back one is heard after it, if that one had been sent.
        await listener.execute(f"NOTIFY {NOTIFY_CHANNEL}, 'marker'")

        async def marker() -> bool:
            return "marker" in heard

        await eventually(marker, what="the marker NOTIFY")
        assert heard == ["", "marker"]  # PostgreSQL folds a transaction's identical notifications
    finally:
        await listener.close()
    async with kit["sessions"]() as session:
        rows = (
            await session.execute(select(outbox).where(outbox.c.topic == topic).order_by(outbox.c.id))
        ).all()
    assert [envelope_pb2.EventEnvelope.FromString(r.payload).event_type for r in rows] == [
        "account.registered"
    ] * 4
    assert all(r.key == "a" and r.event_type == "account.registered" for r in rows)
    assert all(r.headers["event_type"] == "account.registered" and r.published_at is None for r in rows)


async def test_the_relay_publishes_in_order_and_marks_rows_only_after_the_broker_acknowledged(kit, topic):
    ids = [str(uuid.uuid4()) for _ in range(5)]
    async with transaction(kit["sessions"]) as session:
        for account_id in ids:
            await add_registered(session, topic, account_id, key="same-key")
    relay = OutboxRelay(
        sessions=kit["sessions"],
        table=outbox,
        producer=kit["producer"],
        database_url=kit["url"],
        poll_interval=0.2,
    )

    async with running(relay.run):
        records = await read_all(kit["bootstrap"], topic, 5)

        async def all_marked() -> bool:
            async with kit["sessions"]() as session:
                left = await session.scalar(
                    select(func.count())
                    .select_from(outbox)
                    .where(outbox.c.topic == topic, outbox.c.published_at.is_(None))
                )
            return left == 0

        await eventually(all_marked, what="rows marked published")

    payloads = []
    for record in records:
        envelope = envelope_pb2.EventEnvelope.FromString(record.value)
        message = account_events_pb2.AccountRegistered()
        envelope.payload.Unpack(message)
        payloads.append(message.account_id)
        assert record.key == b"same-key"
        assert dict(record.headers)["event_type"] == b"account.registered"
    assert payloads == ids


async def test_a_producer_whose_sender_died_is_replaced_and_the_relay_publishes_on(kit, topic, monkeypatch):
    """aiokafka's sender task dies on an error it does not expect (uvloop's RuntimeError on a
    connection the broker closed mid-write, aio-libs/aiokafka#1038), and its producer then refuses
    every later send. The relay must not be stuck with it."""
    producer = RenewingProducer(
        lambda: create_producer(kit["bootstrap"], idempotent=False, client_id="kit-renewing")
    )
    await producer.start()
    relay = OutboxRelay(
        sessions=kit["sessions"], table=outbox, producer=producer, database_url=kit["url"], poll_interval=0.2
    )
    try:

        def closed_transport(*args, **kwargs):
            raise RuntimeError(
                "unable to perform operation on <TCPTransport closed=True>; the handler is closed"
            )

        monkeypatch.setattr(producer.client, "send", closed_transport)
        with pytest.raises(KafkaError):
            await producer.send_and_wait(topic, b"lost with the sender", key=b"k")
        assert producer.dead()

        async with transaction(kit["sessions"]) as session:
            await add_registered(session, topic, "after", key="k")
        async with running(relay.run):
            (record,) = await read_all(kit["bootstrap"], topic, 1)

        assert producer.renewals == 1
        assert not producer.dead()
        message = account_events_pb2.AccountRegistered()
        envelope_pb2.EventEnvelope.FromString(record.value).payload.Unpack(message)
        assert message.account_id == "after"
    finally:
        await producer.stop()


def _watchful_consumer(kit, topic):
    """A consumer that checks itself after a second idle, and the ids of the events it handled."""
    seen: list[str] = []

    async def handle(session, envelope) -> None:
        seen.append(envelope.event_id)

    return kit_consumer(kit, topic, handle, stall_after=1.0), seen


async def test_a_consumer_that_silently_stops_fetching_is_restarted_once_messages_wait(kit, topic):
    """No error at all, only nothing fetched while messages wait (seen after a storm of connection
    resets): after `stall_after` seconds the consumer notices and starts afresh."""
    consumer, seen = _watchful_consumer(kit, topic)
    first = await send_registered(kit, topic, "before")
    async with running(consumer.run):
        await eventually(lambda: _value(seen == [first]), timeout=20, what="the first event")
        fetching = consumer._consumer

        hung_fetches: list[None] = []
        never = asyncio.Event()

        async def hangs(*args, **kwargs) -> bool:
            hung_fetches.append(None)
            await never.wait()  # a fetch that never answers, and raises nothing
            return False

        fetching._fetcher._proc_fetch_request = hangs
        # The fetch in flight is a real one: send once the one in flight is the hung one.
        await eventually(lambda: _value(bool(hung_fetches)), what="a fetch to hang")
        second = await send_registered(kit, topic, "after")
        await eventually(lambda: _value(seen == [first, second]), timeout=30, what="the second event")
        assert consumer._consumer is not fetching


async def test_a_member_whose_commits_stop_landing_is_restarted_and_the_group_catches_up(kit, topic):
    """No error again, but the group's offsets stand still behind the log while the member is idle
    (seen after a storm of connection resets: the member's commits never reached the group): after
    two idle checks the consumer starts afresh, reads from the group's offset, drops the duplicate
    and commits."""
    consumer, seen = _watchful_consumer(kit, topic)
    first = await send_registered(kit, topic, "before")
    async with running(consumer.run):
        await eventually(lambda: _value(seen == [first]), timeout=20, what="the first event")
        losing = consumer._consumer

        async def lost(*args, **kwargs) -> None:
            return None  # a commit that reports success and stores nothing

        losing.commit = lost
        second = await send_registered(kit, topic, "after")
        await eventually(lambda: _value(seen == [first, second]), timeout=20, what="the second event")

        async def group_caught_up() -> bool:
            current = consumer._consumer
            if current is None or current is losing:
                return False
            partitions = [TopicPartition(topic, p) for p in current.partitions_for_topic(topic) or ()]
            ends = await current.end_offsets(partitions)
            return bool(partitions) and all(
                [(await current.committed(tp) or 0) == ends[tp] for tp in partitions]
            )

        await eventually(group_caught_up, timeout=30, what="a new member committing the group's offset")
        assert seen == [first, second]  # the redelivered copy was dropped by the inbox


async def test_rows_stay_unpublished_while_the_broker_is_down_and_go_out_when_it_is_back(kit, tmp_path):
    broker = EmbeddedBroker(tmp_path / "broker").start()
    producer = create_producer(broker.bootstrap_servers, idempotent=False, client_id="kit-outage")
    await producer.start()
    topic = f"kit-outage-{uuid.uuid4().hex[:8]}"
    relay = OutboxRelay(
        sessions=kit["sessions"],
        table=outbox,
        producer=producer,
        database_url=kit["url"],
        publish_timeout=2.0,
    )
    try:
        broker.stop()
        async with transaction(kit["sessions"]) as session:
            await add_registered(session, topic, "waiting", key="k")

        with pytest.raises((TimeoutError, KafkaError)):
            await relay.publish_batch()
        assert await _unpublished(kit, topic) == 1

        broker.start()
        await eventually(lambda: _published_after_retry(relay), timeout=30, what="the relay to catch up")
        assert await _unpublished(kit, topic) == 0
        records = await read_all(broker.bootstrap_servers, topic, 1)
        assert envelope_pb2.EventEnvelope.FromString(records[0].value).event_type == "account.registered"
    finally:
        await producer.stop()
        broker.stop()


async def test_the_inbox_applies_an_event_once_whatever_the_redeliveries(kit, topic):
    applied: list[str] = []

    async def handle(session, envelope) -> None:
        applied.append(envelope.event_id)
        await session.execute(insert(effects).values(event_id=envelope.event_id, note="done"))

    envelope = new_envelope(
        event_type="account.registered", aggregate_id="k", producer="test", payload=registered("once")
    )
    for _ in range(3):
        await kit["producer"].send_and_wait(topic, envelope.SerializeToString(), key=b"k")
    consumer = kit_consumer(kit, topic, handle)

    async with running(consumer.run):
        await eventually(
            lambda: _value(consumer.processed + consumer.duplicates == 3), what="3 deliveries seen"
        )

    assert applied == [envelope.event_id]
    assert consumer.duplicates == 2
    async with kit["sessions"]() as session:
        assert (
            await session.scalar(
                select(func.count()).select_from(effects).where(effects.c.event_id == envelope.event_id)
            )
            == 1
        )


async def test_a_rebalance_while_a_batch_is_handled_neither_restarts_the_consumer_nor_handles_twice(
    kit, topic
):
    """Its offsets cannot be committed once the group has moved on; the consumer goes on (it rejoins
    by itself) instead of starting afresh, which would add one more member for the group to wait on.

    Whoever has the partition after the rebalance either reads the message again (the inbox drops
    it) or, when the first consumer kept it and rejoined before committing, commits its offset."""
    handled: list[str] = []
    in_handler = asyncio.Event()
    release = asyncio.Event()

    async def handle(session, envelope) -> None:
        if not handled and not release.is_set():
            in_handler.set()
            await release.wait()
        handled.append(envelope.event_id)

    first = kit_consumer(kit, topic, handle)
    envelope = new_envelope(
        event_type="account.registered", aggregate_id="k", producer="t", payload=registered("rebalanced")
    )
    sent = await kit["producer"].send_and_wait(topic, envelope.SerializeToString(), key=b"k")
    partition = TopicPartition(topic, sent.partition)

    async with running(first.run):
        await eventually(lambda: _value(in_handler.is_set()), timeout=20, what="the slow handler")
        original = first._consumer
        assert original is not None
        generation = original._coordinator.generation
        second = kit_consumer(kit, topic, handle, name=first.name)  # the same group
        async with running(second.run):
            await eventually(
                lambda: _value(original._coordinator.generation != generation),
                timeout=30,
                what="the group to rebalance",
            )
            release.set()

            async def settled() -> bool:
                if first.duplicates + second.duplicates >= 1:
                    return True  # read again by the new owner and dropped by the inbox
                for consumer in (first._consumer, second._consumer):
                    if consumer is not None and partition in consumer.assignment():
                        committed = await consumer.committed(partition)
                        return committed is not None and committed > sent.offset
                return False

            await eventually(settled, timeout=30, what="the message redelivered or its offset committed")
            assert first._consumer is original

    assert handled == [envelope.event_id]


async def test_a_stopped_consumer_leaves_its_group_so_the_next_one_does_not_wait_for_it(kit, topic):
    seen: list[str] = []

    async def handle(session, envelope) -> None:
        seen.append(envelope.event_id)

    consumer = kit_consumer(kit, topic, handle)
    await send_registered(kit, topic, "member")
    async with running(consumer.run):
        await eventually(lambda: _value(len(seen) == 1), timeout=20, what="the consumer in its group")

    admin = AIOKafkaAdminClient(bootstrap_servers=kit["bootstrap"])
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([consumer.group_id])
    finally:
        await admin.close()
    [group] = response.groups
    # (error_code, group, state, protocol_type, protocol, members): left, not kept a session long.
    assert (group[0], group[1], group[5]) == (0, consumer.group_id, [])


async def test_a_storm_of_redeliveries_is_dropped_by_one_inbox_query_per_batch(kit, topic):
    applied: list[str] = []

    async def handle(session, envelope) -> None:
        applied.append(envelope.event_id)

    envelopes = [
        new_envelope(
            event_type="account.registered", aggregate_id="k", producer="test", payload=registered(str(i))
        )
        for i in range(40)
    ]
    for envelope in envelopes:
        await kit["producer"].send(topic, envelope.SerializeToString(), key=b"k")
    await kit["producer"].flush()
    first = kit_consumer(kit, topic, handle)
    async with running(first.run):
        await eventually(lambda: _value(first.processed == 40), what="40 events handled")

    # The same 40 again, as a broker that lost them would get them from the outbox.
    for envelope in envelopes:
        await kit["producer"].send(topic, envelope.SerializeToString(), key=b"k")
    await kit["producer"].flush()
    transactions: list[None] = []
    listener = lambda *args: transactions.append(None)  # noqa: E731
    event.listen(kit["engine"].sync_engine, "begin", listener)
    again = kit_consumer(kit, topic, handle, name=first.name)
    try:
        async with running(again.run):
            await eventually(lambda: _value(again.duplicates == 40), what="40 redeliveries dropped")
    finally:
        event.remove(kit["engine"].sync_engine, "begin", listener)

    assert sorted(applied) == sorted(e.event_id for e in envelopes)  # each handled once
    assert again.processed == 0
    # One refused insert per fetched batch, not one transaction per message.
    assert len(transactions) <= again.batches <= 5


async def test_poison_and_failing_messages_go_to_the_dead_letter_topic_and_the_partition_keeps_flowing(
    kit, topic
):
    seen: list[str] = []

    async def handle(session, envelope) -> None:
        message = account_events_pb2.AccountRegistered()
        envelope.payload.Unpack(message)
        if message.account_id == "explodes":
            await session.execute(text("SELECT 1/0"))
        seen.append(message.account_id)

    good = new_envelope(
        event_type="account.registered", aggregate_id="k", producer="t", payload=registered("good")
    )
    bad = new_envelope(
        event_type="account.registered", aggregate_id="k", producer="t", payload=registered("explodes")
    )
    later = new_envelope(
        event_type="account.registered", aggregate_id="k", producer="t", payload=registered("later")
    )
    for value in (
        b"\xff\x00 not protobuf",
        good.SerializeToString(),
        bad.SerializeToString(),
        later.SerializeToString(),
    ):
        await kit["producer"].send_and_wait(topic, value, key=b"k")
    consumer = kit_consumer(kit, topic, handle, max_attempts=2)

    async with running(consumer.run):
        await eventually(
            lambda: _value(seen == ["good", "later"]), timeout=20, what="the partition to flow on"
        )
        dead = await read_all(kit["bootstrap"], dead_letter_topic(topic), 2)

    assert consumer.dead_lettered == 2
    reasons = sorted(dict(r.headers)["dlq-reason"].decode() for r in dead)
    assert "division by zero" in reasons[0]
    assert reasons[1].startswith("unparseable message")


async def test_an_outage_of_the_database_does_not_use_up_a_message_s_attempts(kit, topic):
    """While a dependency is down the message waits, however long, instead of being dead-lettered."""
    outage = 5  # failures in a row, more than max_attempts
    tries: list[str] = []

    async def handle(session, envelope) -> None:
        tries.append(envelope.event_id)
        if len(tries) <= outage:
            raise ConnectionRefusedError(111, "Connection refused")
        await session.execute(insert(effects).values(event_id=envelope.event_id, note="after the outage"))

    envelope = new_envelope(
        event_type="account.registered", aggregate_id="k", producer="t", payload=registered("patient")
    )
    await kit["producer"].send_and_wait(topic, envelope.SerializeToString(), key=b"k")
    consumer = kit_consumer(kit, topic, handle, max_attempts=2)

    async with running(consumer.run):
        await eventually(lambda: _value(consumer.processed == 1), timeout=30, what="the event applied")

    assert len(tries) == outage + 1
    assert consumer.dead_lettered == 0
    async with kit["sessions"]() as session:
        note = await session.scalar(select(effects.c.note).where(effects.c.event_id == envelope.event_id))
    assert note == "after the outage"
