"""Kafka plumbing: the producer, topic creation, and the envelope every message travels in."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message

from ecommerce.events.v1 import envelope_pb2

log = logging.getLogger(__name__)

# Facts are published on `<domain>.events`, saga commands on `<domain>.commands` (DESIGN §4).
TOPICS = (
    "account.events",
    "catalog.events",
    "inventory.commands",
    "inventory.events",
    "order.events",
    "payment.commands",
    "payment.events",
    "notification.events",
)
DEAD_LETTER_SUFFIX = ".dlq"


def dead_letter_topic(topic: str) -> str:
    return topic + DEAD_LETTER_SUFFIX


def all_topics() -> list[str]:
    return [*TOPICS, *(dead_letter_topic(t) for t in TOPICS)]


def new_envelope(
    *,
    event_type: str,
    aggregate_id: str,
    producer: str,
    payload: Message,
    causation_id: str = "",
    correlation_id: str = "",
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> envelope_pb2.EventEnvelope:
    packed = any_pb2.Any()
    packed.Pack(payload)
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromDatetime(occurred_at or datetime.now(UTC))
    return envelope_pb2.EventEnvelope(
        event_id=event_id or str(uuid.uuid4()),
        event_type=event_type,
        aggregate_id=aggregate_id,
        occurred_at=timestamp,
        producer=producer,
        payload=packed,
        causation_id=causation_id,
        correlation_id=correlation_id or aggregate_id,
    )


def unpack(envelope: envelope_pb2.EventEnvelope, message_type: type[Message]) -> Message:
    """The typed payload; ValueError when the envelope carries another type."""
    message = message_type()
    if not envelope.payload.Unpack(message):
        raise ValueError(
            f"{envelope.event_type} carries {envelope.payload.TypeName()}, not {message_type.DESCRIPTOR.full_name}"
        )
    return message


def create_producer(bootstrap_servers: str, *, idempotent: bool, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=idempotent,
        linger_ms=2,
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
    )


async def ensure_topics(
    bootstrap_servers: str, topics: Iterable[str], *, partitions: int, replication_factor: int = 1
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="ecommerce-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        # Another process may create them at the same moment; either way they exist afterwards.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [
                    NewTopic(t, num_partitions=partitions, replication_factor=replication_factor)
                    for t in missing
                ]
            )
        log.info("created topics %s", ", ".join(missing))
    finally:
        await admin.close()
