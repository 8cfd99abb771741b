"""Live order status: every `order.status_changed`, read by this gateway instance, handed to the
subscriptions of this instance that watch that order.

The hub reads `order.events` with a consumer of its own and no consumer group (every partition
assigned by hand, starting at the end), so each gateway instance sees every event whatever how
many run: a shopper's WebSocket may be on any of them. Subscribers get an `asyncio.Queue` of
signals; a subscriber reads the whole order again on each one, so a full queue may drop a signal
without losing a transition (the signals still queued come after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.message import DecodeError

from ecommerce.events.v1 import envelope_pb2, order_events_pb2
from servicekit import topics
from servicekit.kafka import BrokerAccess, connection_options, unpack
from servicekit.watchers import Watchers

log = logging.getLogger(__name__)

TOPIC = topics.ORDER_EVENTS
STATUS_CHANGED = "order.status_changed"
QUEUE_SIZE = 16

Signal = order_events_pb2.OrderStatusChanged


class OrderEventHub:
    def __init__(self, bootstrap_servers: str | BrokerAccess, *, topic: str = TOPIC) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._subscribers: Watchers[str, asyncio.Queue[Signal]] = Watchers()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.received = 0

    # -- subscribers ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self, order_id: str) -> Iterator[asyncio.Queue[Signal]]:
        queue: asyncio.Queue[Signal] = asyncio.Queue(maxsize=QUEUE_SIZE)
        with self._subscribers.watching(order_id, queue):
            yield queue

    @property
    def subscriptions(self) -> int:
        return sum(len(queues) for queues in self._subscribers.values())

    def publish(self, change: Signal) -> None:
        for queue in self._subscribers.get(change.order_id, ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(change)

    async def wait_ready(self, timeout: float) -> bool:
        """Whether the hub reads the topic (positioned at its end) within `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        return self._ready.is_set()

    # -- the consumer -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="order-event-hub")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            consumer = AIOKafkaConsumer(
                **connection_options(self.bootstrap_servers),
                group_id=None,  # no group: this instance reads every partition, as every other does
                client_id=f"gateway-live-{uuid.uuid4().hex[:8]}",
                enable_auto_commit=False,
                auto_offset_reset="latest",
            )
            try:
                await consumer.start()
                await self._assign(consumer)
                self._ready.set()
                backoff = 0.2
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Events missed meanwhile are caught up by the subscribers' periodic re-reads.
                log.warning("order event hub: %s; reconnecting in %.1fs", exc, backoff)
                self._ready.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        await consumer.topics()  # fetches the cluster's metadata
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise RuntimeError(f"topic {self.topic} has no partitions yet")
        assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        for partition in assigned:
            await consumer.position(partition)  # resolve "the end" now, not at the first fetch

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    try:
                        envelope = envelope_pb2.EventEnvelope.FromString(record.value or b"")
                        if envelope.event_type != STATUS_CHANGED:
                            continue
                        change = unpack(envelope, Signal)
                    except (DecodeError, ValueError) as exc:
                        log.warning("order event hub: skipping an unreadable message: %s", exc)
                        continue
                    self.received += 1
                    self.publish(change)  # type: ignore[arg-type]
