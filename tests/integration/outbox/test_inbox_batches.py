"""A consumer handles each fetched batch of a partition in one transaction, falling back to one
message at a time when the batch fails."""

from __future__ import annotations

import uuid

from sqlalchemy import func, insert, select, text

from ecommerce.events.v1 import account_events_pb2
from servicekit.inbox import Envelope
from servicekit.kafka import dead_letter_topic, ensure_topics
from tests.helpers import eventually
from tests.integration.outbox.kit import (
    _caught_up,
    _envelopes,
    _produce,
    _value,
    effects,
    kit_consumer,
    read_all,
    running,
    statements,
)


async def test_a_fetched_batch_is_handled_in_one_transaction_with_one_inbox_insert(kit, topic):
    transactions: list[int] = []

    async def handle(session, envelope) -> None:
        transactions.append(await session.scalar(text("SELECT txid_current()")))
        await session.execute(insert(effects).values(event_id=envelope.event_id, note="batched"))

    envelopes = _envelopes(30, "batched-")
    await _produce(kit, topic, envelopes)
    consumer = kit_consumer(kit, topic, handle)
    with statements(kit) as sent:
        async with running(consumer.run):
            await eventually(lambda: _value(consumer.processed == 30), what="30 events handled")

    inbox_inserts = [s for s in sent if s.sql.lstrip().upper().startswith("INSERT INTO INBOX")]
    assert len(set(transactions)) == len(inbox_inserts) <= consumer.batches
    assert consumer.batches < 30  # fetched together, not one by one
    async with kit["sessions"]() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(effects)
            .where(effects.c.event_id.in_([e.event_id for e in envelopes]))
        )
    assert rows == 30


async def test_a_failing_message_in_a_batch_is_dead_lettered_alone_and_the_others_are_applied_once(
    kit, topic
):
    seen: list[str] = []

    async def handle(session, envelope) -> None:
        message = account_events_pb2.AccountRegistered()
        envelope.payload.Unpack(message)
        await session.execute(insert(effects).values(event_id=envelope.event_id, note=message.account_id))
        if message.account_id == "middle-2":
            await session.execute(text("SELECT 1/0"))
        seen.append(message.account_id)

    envelopes = _envelopes(5, "middle-")
    await _produce(kit, topic, envelopes)
    consumer = kit_consumer(kit, topic, handle, max_attempts=2)
    async with running(consumer.run):
        await eventually(
            lambda: _value(consumer.dead_lettered == 1 and consumer.processed == 4), what="the batch"
        )
        [dead] = await read_all(kit["bootstrap"], dead_letter_topic(topic), 1)

    assert Envelope.FromString(dead.value).event_id == envelopes[2].event_id
    assert "division by zero" in dict(dead.headers)["dlq-reason"].decode()
    # The pass that committed handled the others in their order, each once.
    assert seen[-4:] == ["middle-0", "middle-1", "middle-3", "middle-4"]
    async with kit["sessions"]() as session:
        notes = (
            await session.scalars(
                select(effects.c.note).where(effects.c.event_id.in_([e.event_id for e in envelopes]))
            )
        ).all()
    assert sorted(notes) == ["middle-0", "middle-1", "middle-3", "middle-4"]


async def test_a_declared_follow_up_runs_before_the_next_message_and_others_after_the_commit(kit, topic):
    steps: list[str] = []

    def handler():
        async def handle(session, envelope):
            message = account_events_pb2.AccountRegistered()
            envelope.payload.Unpack(message)
            steps.append(f"handle {message.account_id}")
            await session.execute(insert(effects).values(event_id=envelope.event_id, note=message.account_id))

            async def follow_up() -> None:
                async with kit["sessions"]() as other:  # the handler's transaction has committed
                    committed = await other.scalar(
                        select(effects.c.note).where(effects.c.event_id == envelope.event_id)
                    )
                steps.append(f"follow {committed}")

            return follow_up

        return handle

    await _produce(kit, topic, _envelopes(3, "d"))
    declared = kit_consumer(kit, topic, handler(), follow_up_types=("account.registered",))
    async with running(declared.run):
        await eventually(lambda: _value(len(steps) == 6), what="3 handled and followed up")
    assert steps == ["handle d0", "follow d0", "handle d1", "follow d1", "handle d2", "follow d2"]

    steps.clear()
    other_topic = f"kit-{uuid.uuid4().hex[:10]}"
    await ensure_topics(kit["bootstrap"], [other_topic, dead_letter_topic(other_topic)], partitions=1)
    await _produce(kit, other_topic, _envelopes(3, "u"))
    undeclared = kit_consumer(kit, other_topic, handler())
    async with running(undeclared.run):
        await eventually(lambda: _value(len(steps) == 6), what="3 handled and followed up")
    follows = [s for s in steps if s.startswith("follow")]
    assert follows == ["follow u0", "follow u1", "follow u2"]  # in order, each after its commit


async def test_events_without_a_handler_cost_no_database_work(kit, topic):
    await _produce(kit, topic, _envelopes(10, "ignored-", event_type="account.role_changed"))

    async def never(session, envelope) -> None:
        raise AssertionError("no handler is registered for account.role_changed")

    consumer = kit_consumer(kit, topic, never)
    with statements(kit) as sent:
        async with running(consumer.run):
            await eventually(
                lambda: _value(consumer.batches > 0 and consumer._consumer is not None),
                what="a batch fetched",
            )
            await eventually(_caught_up(consumer), what="the consumer at the end of its partitions")
    assert consumer.processed == consumer.duplicates == 0
    assert sent == []
