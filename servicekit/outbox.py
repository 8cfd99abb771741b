"""The transactional outbox (docs/architecture.md, "Delivery: outbox and inbox").

A use case adds its events to the `outbox` table in the transaction that changes its state;
`OutboxRelay` publishes unpublished rows in id order (`FOR UPDATE SKIP LOCKED`, woken by
`LISTEN/NOTIFY`, polling as the fallback) and marks them published only after the broker
acknowledged every one of them. A crash between the two repeats a publish; consumers
deduplicate by event id, so delivery is at least once and the effect exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicekit.context import current_request_id
from servicekit.db import driver, listen, transaction
from servicekit.kafka import BrokerAccess, RenewingProducer, dead_letter_topic, ensure_topics, new_envelope
from servicekit.messages import Message
from servicekit.metrics import OUTBOX_PUBLISHED
from servicekit.tracing import inject

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "outbox"
# The newest rows whose topics an idle relay checks on the broker (by the primary key, cheaply).
RECENT_ROWS = 500
# session.info: the (sub)transaction that already sent the relay its NOTIFY.
_NOTIFIED = "outbox_notified"
# An event's row, in plain SQL on the session's asyncpg connection (`driver`): every event of
# every service is one, and SQLAlchemy's handling of a statement adds about a third to its cost.
_INSERT = (
    "INSERT INTO outbox (event_id, topic, key, event_type, payload, headers) "
    "VALUES ($1, $2, $3, $4, $5, $6::jsonb)"
)
# The first event of a (sub)transaction also wakes the relays (NOTIFY_CHANNEL), in the same statement.
_INSERT_NOTIFYING = (
    "WITH notified AS (SELECT pg_notify('outbox', '')) "
    "INSERT INTO outbox (event_id, topic, key, event_type, payload, headers) "
    "SELECT $1, $2, $3, $4, $5, $6::jsonb FROM notified"
)


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("event_id", Text, nullable=False, unique=True),
        Column("topic", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("event_type", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )


class Outbox:
    """Writes events next to the state change that caused them."""

    def __init__(self, table: Table, producer_name: str) -> None:
        self.table = table
        self.producer_name = producer_name

    async def add(self, session: AsyncSession, message: Message) -> str:
        """Stage one message in the session's transaction; returns its event id."""
        envelope = new_envelope(
            event_type=message.event_type,
            aggregate_id=message.aggregate_id,
            producer=self.producer_name,
            payload=message.payload,
            causation_id=message.cause.event_id,
            correlation_id=message.cause.correlation_id,
        )
        event_type = message.event_type
        headers = {"event_type": event_type}
        if request_id := current_request_id():
            headers["x-request-id"] = request_id
        inject(headers)  # `traceparent`: the consumer continues this request's trace
        row = (
            envelope.event_id,
            message.topic,
            message.aggregate_id,
            event_type,
            envelope.SerializeToString(),
            json.dumps(headers),
        )
        # The NOTIFY is delivered to listeners only when the transaction commits; once per
        # (sub)transaction is enough, as PostgreSQL folds identical notifications of one
        # transaction into one.
        current = session.get_nested_transaction() or session.get_transaction()
        pg = await driver(session)
        if current is None or session.info.get(_NOTIFIED) is not current:
            await pg.execute(_INSERT_NOTIFYING, *row)
            session.info[_NOTIFIED] = current
        else:
            await pg.execute(_INSERT, *row)
        return envelope.event_id


class OutboxRelay:
    """Publishes committed outbox rows to Kafka; one per service process."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        producer: AIOKafkaProducer | RenewingProducer,
        database_url: str,
        poll_interval: float = 1.0,
        batch_size: int = 200,
        publish_timeout: float = 30.0,
        recreate_topics_with_partitions: int | None = None,
        bootstrap_servers: str | BrokerAccess = "",
        republish_window: float = 600.0,
    ) -> None:
        self.sessions = sessions
        self.table = table
        self.producer = producer
        self.database_url = database_url
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.publish_timeout = publish_timeout
        # The embedded broker forgets every topic when it restarts, and it then accepts writes to a
        # topic that does not exist into a limbo no consumer ever reads, even once the topic is
        # created. So before each batch the relay checks that its topics exist (a metadata request
        # that never auto-creates) and re-creates the missing ones, with their dead-letter topics.
        self.recreate_topics_with_partitions = recreate_topics_with_partitions
        self.bootstrap_servers = bootstrap_servers
        # What such a broker loses with its memory: the events it acknowledged and nobody had read
        # yet. So when the relay finds its topics gone, it publishes again what it published in the
        # last `republish_window` seconds; consumers drop what they had (their inbox). An idle relay
        # checks its recent topics every `forgotten_check_interval` seconds.
        self.republish_window = republish_window
        self.forgotten_check_interval = max(poll_interval, 1.0) * 5
        self._last_forgotten_check = 0.0
        self.republished_total = 0
        self._wakeup = asyncio.Event()
        self.published_total = 0

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="outbox-listener")
        backoff = 0.1
        try:
            while True:
                try:
                    published = await self.publish_batch()
                    backoff = 0.1
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("outbox relay could not publish, retrying in %.1fs: %s", backoff, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if published < self.batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), self.poll_interval)
                    self._wakeup.clear()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def publish_batch(self) -> int:
        """Publish the oldest unpublished rows; returns how many were published."""
        t = self.table
        async with transaction(self.sessions) as session:
            rows = (
                await session.execute(
                    select(t.c.id, t.c.topic, t.c.key, t.c.payload, t.c.headers)
                    .where(t.c.published_at.is_(None))
                    .order_by(t.c.id)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                await self._check_idle(session)
                return 0
            # A broker that does not answer must not hold the row locks forever: give up, roll
            # back, and let the next round try again.
            async with asyncio.timeout(self.publish_timeout):
                if await self._recreate_forgotten(session, {row.topic for row in rows}):
                    return 0  # the next batch starts again from the oldest row, in order
                pending = [
                    await self.producer.send(
                        row.topic,
                        value=row.payload,
                        key=row.key.encode(),
                        headers=[(k, str(v).encode()) for k, v in (row.headers or {}).items()],
                    )
                    for row in rows
                ]
                await asyncio.gather(*pending)
            await session.execute(
                update(t).where(t.c.id.in_([row.id for row in rows])).values(published_at=func.now())
            )
        self.published_total += len(rows)
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    async def _check_idle(self, session: AsyncSession) -> None:
        """With nothing to publish, now and then: are the topics of recent events still there?"""
        if self.recreate_topics_with_partitions is None:
            return
        now = time.monotonic()
        if now - self._last_forgotten_check < self.forgotten_check_interval:
            return
        self._last_forgotten_check = now
        t = self.table
        latest = select(t.c.topic).order_by(t.c.id.desc()).limit(RECENT_ROWS).subquery()
        recent = set((await session.scalars(select(latest.c.topic).distinct())).all())
        if recent:
            async with asyncio.timeout(self.publish_timeout):
                await self._recreate_forgotten(session, recent)

    async def _recreate_forgotten(self, session: AsyncSession, topics: set[str]) -> bool:
        """Re-create the topics a memory-only broker forgot (it restarted) and mark their recent
        events for publishing again; True when it did."""
        if self.recreate_topics_with_partitions is None:
            return False
        cluster = await self.producer.client.fetch_all_metadata()
        missing = sorted(topics - cluster.topics())
        if not missing:
            return False
        log.warning("topics %s are missing on the broker (restarted?); re-creating them", ", ".join(missing))
        await ensure_topics(
            self.bootstrap_servers,
            [*missing, *(dead_letter_topic(t) for t in missing)],
            partitions=self.recreate_topics_with_partitions,
        )
        t = self.table
        again = await session.execute(
            update(t)
            .where(t.c.topic.in_(missing), t.c.published_at > self._republish_since())
            .values(published_at=None)
        )
        count = again.rowcount or 0  # type: ignore[attr-defined]
        if count:
            log.warning(
                "publishing again %d recent events of %s, which the broker lost", count, ", ".join(missing)
            )
            self.republished_total += count
        self._wakeup.set()
        return True

    def _republish_since(self) -> Any:
        return func.now() - timedelta(seconds=self.republish_window)

    async def oldest_unpublished_age(self) -> float:
        """Seconds since the oldest unpublished event was written (0 when none): the outbox lag."""
        async with self.sessions() as session:
            oldest = await session.scalar(
                select(func.min(self.table.c.created_at)).where(self.table.c.published_at.is_(None))
            )
        if oldest is None:
            return 0.0
        return max(0.0, (datetime.now(UTC) - oldest).total_seconds())

    async def _listen(self) -> None:
        await listen(
            self.database_url,
            NOTIFY_CHANNEL,
            lambda _payload: self._wakeup.set(),
            # Catch up on whatever was written while nobody listened.
            on_connect=self._wakeup.set,
            name="outbox listener (polling meanwhile)",
        )
