"""The consumer side of the outbox: every event handled once, whatever the redeliveries.

`EventConsumer` reads its topics in a consumer group with auto-commit off. It records
`(consumer, event_id)` in the `inbox` table and runs the message's handler in that same
transaction; only after the commit does it commit the Kafka offset. A duplicate
finds its inbox row and changes nothing. A message that cannot be parsed, or whose handler keeps
failing past its attempts, goes to the topic's dead-letter topic so the partition keeps flowing.

A handler that must call something slow outside any transaction (a payment provider) records its
intent and returns a follow-up: the consumer awaits it after the commit and before the offset
commit, and on failure retries the follow-up alone (the inbox row is already written).

The partitions of one fetch are handled concurrently, each partition's messages in order, and
each partition's fetched batch in ONE transaction: its inbox rows inserted by one statement (the
rows it refuses are the duplicates), the new messages' handlers run in that transaction, one
commit, then the offsets. A message the consumer has no handler for costs no database work. When
the batch fails (a handler raised, the database went away) it is rolled back whole and its
messages are handled again one at a time, each in its own transaction, so that a poison message
goes to the dead-letter topic alone and the others are applied. A message whose handler may
return a follow-up that must run before the next message of its partition (`follow_up_types`:
a payment provider's call) ends its transaction; other follow-ups (waking a delivery loop) run
after the commit, in the order of their messages. A redelivery storm (a consumer restarted mid-batch, an outbox
publishing again what a restarted broker lost) costs one refused insert per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from google.protobuf.message import DecodeError
from sqlalchemy import Column, DateTime, MetaData, Table, Text, func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecommerce.events.v1 import envelope_pb2
from servicekit.db import driver, transaction
from servicekit.kafka import (
    BrokerAccess,
    RenewingProducer,
    connection_options,
    dead_letter_topic,
    group_timeouts,
)
from servicekit.metrics import track_consumer
from servicekit.tracing import consuming
from servicekit.transient import is_transient

log = logging.getLogger(__name__)

Envelope = envelope_pb2.EventEnvelope
FollowUp = Callable[[], Awaitable[None]]
# A handler returns None, or a follow-up to run once its transaction has committed.
Handler = Callable[[AsyncSession, Envelope], Awaitable[FollowUp | None]]
# A message of a fetched batch awaiting its handler: its position in the batch, the record, the
# envelope read from it, and its handler.
Pending = tuple[int, ConsumerRecord, Envelope, Handler]


# The inbox rows of a batch of events (ids and types side by side) in one statement, whatever
# its size; it answers the ids that were new. Plain SQL on the session's asyncpg connection
# (`driver`), as every event of every consumer passes here.
_INSERT_NEW = (
    "INSERT INTO inbox (consumer, event_id, event_type) "
    "SELECT $1, event_id, event_type FROM unnest($2::text[], $3::text[]) AS batch(event_id, event_type) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)


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
        bootstrap_servers: str | BrokerAccess,
        dead_letters: AIOKafkaProducer | RenewingProducer,
        max_attempts: int = 5,
        group_id: str | None = None,
        fetch_max_wait_ms: int = 50,
        stall_after: float = 30.0,
        session_timeout_ms: int = 10_000,
        follow_up_types: Collection[str] = (),
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
        # Event types whose handlers may return a follow-up that must run before the next message of
        # the partition is handled: each ends its batch's transaction.
        self.follow_up_types = frozenset(follow_up_types)
        # Seconds without a record after which the consumer checks that it is not stuck.
        self.stall_after = stall_after
        self.processed = 0
        self.duplicates = 0
        self.dead_lettered = 0
        # Partition batches handled (each in one transaction, or one at a time after a failure).
        self.batches = 0
        self._consumer: AIOKafkaConsumer | None = None
        # The group's committed offsets that lagged behind the log at the last idle check.
        self._unmoved: dict[TopicPartition, int] = {}
        track_consumer(self)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            consumer = AIOKafkaConsumer(
                *self.topics,
                **connection_options(self.bootstrap_servers),
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
        unmoved = await self._group_lag(consumer)
        stuck = {tp: offset for tp, offset in unmoved.items() if self._unmoved.get(tp) == offset}
        self._unmoved = unmoved
        if stuck:
            self._unmoved = {}
            raise KafkaError(
                f"{self.name}: the group's offsets of {len(stuck)} partitions lag behind their messages "
                f"and did not move for {self.stall_after:.0f}s while this member had nothing to do"
            )

    async def _group_lag(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """The group's committed offset of each partition of our topics that has messages past it.

        The check an idle member makes of the group as a whole, after a storm of connection resets
        left one with no partitions that did not rejoin (or whose commits no longer landed): every
        member idle, the group's offsets still, messages waiting, and nothing else noticing. The
        same offsets two idle checks apart mean that no member is handling them."""
        partitions = [
            TopicPartition(topic, partition)
            for topic in self.topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return {}
        ends = await consumer.end_offsets(partitions)
        lagging: dict[TopicPartition, int] = {}
        for tp in partitions:
            committed = await consumer.committed(tp) or 0
            if ends[tp] > committed:
                lagging[tp] = committed
        return lagging

    async def _handle_all(self, records: Sequence[ConsumerRecord]) -> None:
        """Handle one partition's fetched batch: in as few transactions as its follow-ups allow,
        or else one message at a time from the first message not yet settled."""
        self.batches += 1
        todo = self._readable(records) if len(records) > 1 else None
        if todo is None:
            for record in records:
                await self.process(record)
            return
        settled = 0
        try:
            for segment in self._segments(todo):
                await self._handle_segment(segment)
                settled = segment[-1][0] + 1
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info(
                "%s: a batch of %d messages failed, handling them one at a time: %s",
                self.name,
                len(records) - settled,
                exc,
            )
        for record in records[settled:]:
            await self.process(record)

    def _readable(self, records: Sequence[ConsumerRecord]) -> list[Pending] | None:
        """The messages this consumer handles, with their positions; None when one cannot be read
        (one at a time, it goes to the dead-letter topic alone)."""
        todo: list[Pending] = []
        for index, record in enumerate(records):
            try:
                envelope = Envelope.FromString(record.value or b"")
            except DecodeError:
                return None
            if not envelope.event_id or not envelope.event_type:
                return None
            handler = self.handlers.get(envelope.event_type)
            if handler is not None:
                todo.append((index, record, envelope, handler))
        return todo

    def _segments(self, todo: list[Pending]) -> Iterator[list[Pending]]:
        """Runs of messages for one transaction each: a message whose handler may return a
        follow-up ends its run, so that its follow-up runs before the next message is handled."""
        start = 0
        for position, (_, _, envelope, _) in enumerate(todo):
            if envelope.event_type in self.follow_up_types:
                yield todo[start : position + 1]
                start = position + 1
        if start < len(todo):
            yield todo[start:]

    async def _handle_segment(self, segment: list[Pending]) -> None:
        """One transaction: the inbox rows in one statement, the new messages' handlers in order,
        one commit; then the follow-ups the handlers returned, in order."""
        follow_ups: list[tuple[Pending, FollowUp]] = []
        processed = duplicates = 0
        async with transaction(self.sessions) as session:
            kinds = {envelope.event_id: envelope.event_type for _, _, envelope, _ in segment}
            inserted = await (await driver(session)).fetch(
                _INSERT_NEW, self.name, list(kinds), list(kinds.values())
            )
            new = {row[0] for row in inserted}
            for pending in segment:
                _, record, envelope, handler = pending
                if envelope.event_id not in new:
                    duplicates += 1
                    continue
                new.discard(envelope.event_id)  # a second copy in the same batch is a duplicate
                with consuming(record.headers, topic=record.topic, consumer=self.name):
                    follow_up = await handler(session, envelope)
                processed += 1
                if follow_up is not None:
                    follow_ups.append((pending, follow_up))
        self.processed += processed
        self.duplicates += duplicates
        for (_, record, envelope, handler), follow_up in follow_ups:
            with consuming(record.headers, topic=record.topic, consumer=self.name):
                await self._run(record, envelope, handler, follow_up)

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
        await self._run(record, envelope, handler)

    async def _run(
        self, record: ConsumerRecord, envelope: Envelope, handler: Handler, follow_up: FollowUp | None = None
    ) -> None:
        """Handle the message (unless its transaction already committed and only `follow_up` is
        left), then its follow-up, retrying either until it succeeds or its attempts are spent."""
        delay = 0.1
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
            inserted = await (await driver(session)).fetch(
                _INSERT_NEW, self.name, [envelope.event_id], [envelope.event_type]
            )
            if not inserted:
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
