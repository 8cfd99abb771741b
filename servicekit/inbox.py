"""The consumer side of DESIGN §4: every event handled once, whatever the redeliveries.

`EventConsumer` reads its topics in a consumer group with auto-commit off. For each message it
opens a transaction, records `(consumer, event_id)` in the `inbox` table and runs the handler
in that same transaction; only after the commit does it commit the Kafka offset. A duplicate
finds its inbox row and changes nothing. A message that cannot be parsed, or whose handler keeps
failing past its attempts, goes to the topic's dead-letter topic so the partition keeps flowing.

A handler that must call something slow outside any transaction (a payment provider) records its
intent and returns a follow-up: the consumer awaits it after the commit and before the offset
commit, and on failure retries the follow-up alone (the inbox row is already written).

The partitions of one fetch are handled concurrently, each partition's messages in order.

A redelivery storm (a consumer restarted mid-batch, a broker that lost its offsets, an outbox
publishing again what a restarted broker lost) brings back thousands of messages already handled.
Before a batch of at least `BATCH_CHECK` messages, one query finds those the inbox already holds,
and they are dropped without a transaction each. The insert of each message stays the guarantee:
the query only skips what that insert would refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from google.protobuf.message import DecodeError
from sqlalchemy import Column, DateTime, MetaData, Table, Text, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecommerce.events.v1 import envelope_pb2
from servicekit.db import transaction
from servicekit.kafka import RenewingProducer, dead_letter_topic, group_timeouts
from servicekit.metrics import track_consumer
from servicekit.tracing import consuming
from servicekit.transient import is_transient

log = logging.getLogger(__name__)

Envelope = envelope_pb2.EventEnvelope
FollowUp = Callable[[], Awaitable[None]]
# A handler returns None, or a follow-up to run once its transaction has committed.
Handler = Callable[[AsyncSession, Envelope], Awaitable[FollowUp | None]]


async def _nothing() -> None:
    return None


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("consumer", Text, primary_key=True),
        Column("event_id", Text, primary_key=True),
        Column("event_type", Text, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class EventConsumer:
    def __init__(
        self,
        *,
        name: str,
        topics: Sequence[str],
        handlers: Mapping[str, Handler],
        sessions: async_sessionmaker[AsyncSession],
        inbox: Table,
        bootstrap_servers: str,
        dead_letters: AIOKafkaProducer | RenewingProducer,
        max_attempts: int = 5,
        group_id: str | None = None,
        fetch_max_wait_ms: int = 50,
        stall_after: float = 30.0,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self.name = name
        self.topics = list(topics)
        self.handlers = dict(handlers)
        self.sessions = sessions
        self.inbox = inbox
        self.bootstrap_servers = bootstrap_servers
        self.dead_letters = dead_letters
        self.max_attempts = max_attempts
        self.group_id = group_id or name
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.session_timeout_ms = session_timeout_ms
        # Seconds without a record after which the consumer checks that it is not stuck.
        self.stall_after = stall_after
        self.processed = 0
        self.duplicates = 0
        self.dead_lettered = 0
        self._consumer: AIOKafkaConsumer | None = None
        track_consumer(self)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            consumer = AIOKafkaConsumer(
                *self.topics,
                bootstrap_servers=self.bootstrap_servers,
                group_id=self.group_id,
                client_id=f"{self.name}-consumer",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=200,
                # The embedded broker answers a waiting fetch only when the wait ends, so the wait
                # is a saga hop's latency; a short one costs a little idle polling.
                fetch_max_wait_ms=self.fetch_max_wait_ms,
                **group_timeouts(self.session_timeout_ms),
            )
            try:
                await consumer.start()
                self._consumer = consumer
                backoff = 0.5
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer %s failed, restarting in %.1fs: %s", self.name, backoff, exc)
            finally:
                self._consumer = None
                # Stopped before the pause, not after: a consumer left running rejoins its group
                # meanwhile, and the new one then waits for that member to time out.
                await _stop(consumer, self.name)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        idle_since = time.monotonic()
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            if not batches:
                if time.monotonic() - idle_since >= self.stall_after:
                    await self._raise_if_stuck(consumer)
                    idle_since = time.monotonic()
                continue
            idle_since = time.monotonic()
            # Partitions side by side, each in its own order: one aggregate's messages share a
            # partition, so they are still handled one after the other, while a slow handler (a
            # payment provider) no longer holds up the other partitions. The offsets are committed
            # once every partition's messages are handled; a failure stops them all and the
            # consumer restarts from the last commit (the inbox drops what was handled).
            if len(batches) == 1:
                for records in batches.values():
                    await self._handle_all(records)
            else:
                async with asyncio.TaskGroup() as group:
                    for records in batches.values():
                        group.create_task(self._handle_all(records))
            await self._commit(consumer, batches)

    async def _commit(
        self, consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, Sequence[ConsumerRecord]]
    ) -> None:
        """Commit what was handled, of the partitions this consumer still has.

        The group may have rebalanced while the batch was handled (a member came or went, the
        broker restarted): the consumer rejoins by itself, and whoever has the partitions now reads
        the uncommitted messages again, which the inbox drops. Restarting the consumer instead would
        add one more member for the group to wait on."""
        assigned = consumer.assignment()
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if tp in assigned}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.info("%s: offsets not committed, the group rebalanced: %s", self.name, exc)

    async def _raise_if_stuck(self, consumer: AIOKafkaConsumer) -> None:
        """After `stall_after` seconds without a record: raise (so the consumer starts afresh) when
        it is not in its group, or when its partitions hold messages it does not fetch.

        Both were seen after the broker's connections were reset again and again (make chaos): a
        consumer that never completed its rejoin, or whose fetch task had ended (aiokafka does not
        restart it, and getmany then answers "nothing" for ever), without an error reaching us. An
        idle member of a group with more members than partitions has joined, and has nothing waiting.
        """
        if _not_in_group(consumer):
            raise KafkaError(f"{self.name}: not in its consumer group for {self.stall_after:.0f}s")
        waiting = await self.lag()
        if waiting > 0:
            raise KafkaError(
                f"{self.name}: {waiting} messages waiting, none fetched for {self.stall_after:.0f}s"
            )

    async def _handle_all(self, records: Sequence[ConsumerRecord]) -> None:
        handled = await self._handled_before(records)
        for index, record in enumerate(records):
            if index in handled:
                self.duplicates += 1
                continue
            await self.process(record)

    async def _handled_before(self, records: Sequence[ConsumerRecord]) -> set[int]:
        """The positions in `records` of the events this consumer's inbox already holds, found
        with one query; none for a short batch (steady traffic, where the query would only add a
        round trip) or when the database cannot answer (each message then waits out the outage)."""
        if len(records) < BATCH_CHECK:
            return set()
        positions: dict[str, list[int]] = {}
        for index, record in enumerate(records):
            try:
                envelope = Envelope.FromString(record.value or b"")
            except DecodeError:
                continue  # for process() to dead-letter
            if envelope.event_id and envelope.event_type in self.handlers:
                positions.setdefault(envelope.event_id, []).append(index)
        if not positions:
            return set()
        try:
            async with self.sessions() as session:
                known = await session.scalars(
                    select(self.inbox.c.event_id).where(
                        self.inbox.c.consumer == self.name, self.inbox.c.event_id.in_(list(positions))
                    )
                )
                return {index for event_id in known for index in positions[event_id]}
        except Exception as exc:
            if is_transient(exc):
                return set()
            raise

    async def lag(self) -> int:
        """Messages on our partitions not yet consumed (0 when not running)."""
        consumer = self._consumer
        if consumer is None:
            return 0
        partitions: set[TopicPartition] = consumer.assignment()
        if not partitions:
            return 0
        ends = await consumer.end_offsets(list(partitions))
        total = 0
        for tp in partitions:
            with contextlib.suppress(Exception):
                total += max(0, ends[tp] - await consumer.position(tp))
        return total

    async def process(self, record: ConsumerRecord) -> None:
        """Handle one message in the trace and with the request id its headers carry."""
        with consuming(record.headers, topic=record.topic, consumer=self.name):
            await self._process(record)

    async def _process(self, record: ConsumerRecord) -> None:
        try:
            envelope = Envelope.FromString(record.value or b"")
            if not envelope.event_id or not envelope.event_type:
                raise DecodeError("envelope without event_id or event_type")
        except DecodeError as exc:
            await self._dead_letter(record, f"unparseable message: {exc}")
            return
        handler = self.handlers.get(envelope.event_type)
        if handler is None:
            return
        delay = 0.1
        follow_up: FollowUp | None = None
        attempt = 0
        while True:
            try:
                if follow_up is None:
                    follow_up = await self._handle_once(envelope, handler) or _nothing
                await follow_up()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # An outage (the database restarting) is not the message's fault: it is retried
                # for as long as the outage lasts, and the partition waits, instead of sending a
                # good message to the dead-letter topic. Only other failures use up attempts.
                transient = is_transient(exc)
                if not transient:
                    attempt += 1
                if attempt == self.max_attempts:
                    log.exception("%s: giving up on %s %s", self.name, envelope.event_type, envelope.event_id)
                    await self._dead_letter(record, f"{type(exc).__name__}: {exc}")
                    return
                log.warning(
                    "%s: handling %s %s failed (%s): %s",
                    self.name,
                    envelope.event_type,
                    envelope.event_id,
                    "dependency unavailable, retrying" if transient else f"attempt {attempt}",
                    exc,
                )
                await asyncio.sleep(delay + random.uniform(0, delay))
                delay = min(delay * 2, 5.0)

    async def _handle_once(self, envelope: Envelope, handler: Handler) -> FollowUp | None:
        async with transaction(self.sessions) as session:
            inserted = await session.scalar(
                insert(self.inbox)
                .values(consumer=self.name, event_id=envelope.event_id, event_type=envelope.event_type)
                .on_conflict_do_nothing()
                .returning(self.inbox.c.event_id)
            )
            if inserted is None:
                self.duplicates += 1
                return None
            follow_up = await handler(session, envelope)
        self.processed += 1
        return follow_up

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        self.dead_lettered += 1
        log.error(
            "%s: dead-lettering %s[%d]@%d: %s",
            self.name,
            record.topic,
            record.partition,
            record.offset,
            reason,
        )
        headers = [
            *(record.headers or ()),
            ("dlq-reason", reason[:1000].encode()),
            ("dlq-consumer", self.name.encode()),
            ("dlq-source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        await self.dead_letters.send_and_wait(
            dead_letter_topic(record.topic), value=record.value, key=record.key, headers=headers
        )


def _not_in_group(consumer: AIOKafkaConsumer) -> bool:
    """Whether the consumer has no assignment from its group, or must join it again."""
    # aiokafka's own: the coordinator, and the subscription the group assigned partitions to.
    coordinator = getattr(consumer, "_coordinator", None)
    subscription = getattr(getattr(consumer, "_subscription", None), "subscription", None)
    if coordinator is None or subscription is None:
        return False
    return bool(coordinator.need_rejoin(subscription))


STOP_TIMEOUT = 10.0
# Batches this long are checked against the inbox in one query first (see the module's docstring).
BATCH_CHECK = 8


def _leave_even_from_generation_zero(consumer: AIOKafkaConsumer) -> None:
    """Make the consumer's stop leave its group when it joined in generation 0.

    Tansu numbers a group's first generation 0 where Kafka starts at 1, and aiokafka sends
    LeaveGroup only from a generation above 0. A consumer stopped in Tansu's first generation
    stayed a member until its session timed out, and whoever joined next waited for it (18 s
    instead of 5, measured): every restart of a service on the embedded broker paid it. The request
    carries only the group and the member id, so the generation it is sent from does not matter.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is not None and coordinator.generation == 0 and coordinator.member_id:
        coordinator.generation = 1


async def _stop(consumer: AIOKafkaConsumer, name: str) -> None:
    """Stop a consumer before starting afresh; whatever its stop does, the restart goes on.

    aiokafka's stop cancels the fetches in flight and awaits them, which raises their
    CancelledError out of stop: taken for our own cancellation, it ended the consumer's task for
    good, silently. Only a cancellation of this task goes on from here.
    """
    _leave_even_from_generation_zero(consumer)
    try:
        async with asyncio.timeout(STOP_TIMEOUT):
            await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.debug("consumer %s: its stop raised its own fetches' cancellation", name)
        # What stop had still to do: its fetch task and its connections must not outlive it.
        for part in ("_fetcher", "_client"):
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await getattr(consumer, part).close()
            except asyncio.CancelledError:
                if task is not None and task.cancelling():
                    raise
            except Exception as exc:
                log.debug("consumer %s: closing its %s: %s", name, part.strip("_"), exc)
    except Exception as exc:
        log.warning("consumer %s did not stop cleanly: %s", name, exc)
