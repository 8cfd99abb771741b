"""What the outbox and inbox tests share: a database with the kit's tables, a topic per test,
consumers under fresh groups, and ways to produce and read events."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from sqlalchemy import Column, MetaData, Table, Text, func, select

from ecommerce.events.v1 import account_events_pb2
from servicekit.db import create_engine, database_url, ensure_database, session_factory
from servicekit.inbox import EventConsumer, inbox_table
from servicekit.kafka import create_producer, new_envelope
from servicekit.messages import Message
from servicekit.outbox import Outbox, OutboxRelay, outbox_table
from tests.helpers import Sent, eventually, group_timeouts, sql_sent

metadata = MetaData()


outbox = outbox_table(metadata)


inbox = inbox_table(metadata)


effects = Table("effects", metadata, Column("event_id", Text, primary_key=True), Column("note", Text))


@contextlib.asynccontextmanager
async def kit_resources(
    infra, database: str, client_id: str, tables: MetaData = metadata
) -> AsyncIterator[dict]:
    """The database `database` on the session's PostgreSQL with `tables` made afresh, its sessions,
    and a started producer to the session's broker."""
    url = database_url(infra.postgres_url, database)
    await ensure_database(url)
    engine = create_engine(url, pool_size=5)
    async with engine.begin() as conn:
        await conn.run_sync(tables.drop_all)
        await conn.run_sync(tables.create_all)
    producer = create_producer(infra.kafka_bootstrap_servers, idempotent=False, client_id=client_id)
    await producer.start()
    try:
        yield {
            "url": url,
            "engine": engine,
            "sessions": session_factory(engine),
            "producer": producer,
            "bootstrap": infra.kafka_bootstrap_servers,
        }
    finally:
        await producer.stop()
        await engine.dispose()


async def read_all(bootstrap: str, topic: str, count: int, timeout: float = 15) -> list:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,  # reads every partition itself: no group to join
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list = []
    try:

        async def enough() -> bool:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
            return len(records) >= count

        await eventually(enough, timeout=timeout, what=f"{count} records on {topic}")
    finally:
        await consumer.stop()
    return records


def kit_consumer(
    kit,
    topic: str,
    handle,
    *,
    max_attempts: int = 5,
    stall_after: float = 30.0,
    name: str | None = None,
    follow_up_types: tuple[str, ...] = (),
) -> EventConsumer:
    """A consumer of `topic` under a fresh group (or `name`'s), `handle` taking account.registered."""
    return EventConsumer(
        name=name or f"kit-{uuid.uuid4().hex[:6]}",
        topics=[topic],
        handlers={"account.registered": handle},
        follow_up_types=follow_up_types,
        sessions=kit["sessions"],
        inbox=inbox,
        bootstrap_servers=kit["bootstrap"],
        dead_letters=kit["producer"],
        max_attempts=max_attempts,
        stall_after=stall_after,
        session_timeout_ms=group_timeouts()["session_timeout_ms"],
    )


async def add_registered(session, topic: str, account_id: str, *, key: str) -> None:
    """Write one account.registered to the outbox, in the caller's transaction."""
    await Outbox(outbox, "kit").add(
        session,
        Message(
            topic=topic, event_type="account.registered", aggregate_id=key, payload=registered(account_id)
        ),
    )


async def send_registered(kit, topic: str, account_id: str) -> str:
    """Produce one account.registered on `topic`; returns its event id."""
    envelope = new_envelope(
        event_type="account.registered", aggregate_id="k", producer="t", payload=registered(account_id)
    )
    await kit["producer"].send_and_wait(topic, envelope.SerializeToString(), key=b"k")
    return envelope.event_id


def registered(account_id: str) -> account_events_pb2.AccountRegistered:
    return account_events_pb2.AccountRegistered(account_id=account_id, email=f"{account_id}@example.com")


@contextlib.asynccontextmanager
async def running(coro_factory) -> AsyncIterator[asyncio.Task]:
    task = asyncio.create_task(coro_factory())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _unpublished(kit, topic: str) -> int:
    async with kit["sessions"]() as session:
        return await session.scalar(
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.topic == topic, outbox.c.published_at.is_(None))
        )


async def _published_after_retry(relay: OutboxRelay) -> bool:
    try:
        return await relay.publish_batch() > 0
    except (TimeoutError, KafkaError):
        return False


async def _value(value: bool) -> bool:
    return value


def _envelopes(count: int, prefix: str, event_type: str = "account.registered") -> list:
    return [
        new_envelope(
            event_type=event_type, aggregate_id="k", producer="t", payload=registered(f"{prefix}{i}")
        )
        for i in range(count)
    ]


async def _produce(kit, topic: str, envelopes: list) -> None:
    """All on one partition (one key), so that a consumer started afterwards fetches them together."""
    for envelope in envelopes:
        await kit["producer"].send(topic, envelope.SerializeToString(), key=b"k")
    await kit["producer"].flush()


def statements(kit) -> contextlib.AbstractContextManager[list[Sent]]:
    """Every SQL statement the test's engine sends meanwhile."""
    return sql_sent(kit["engine"])


def _caught_up(consumer: EventConsumer):
    async def check() -> bool:
        return await consumer.lag() == 0

    return check
