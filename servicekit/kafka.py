"""Kafka plumbing: how a client reaches the broker, the producer, topic creation, and the envelope
every message travels in."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import AIOKafkaConnection, CloseReason
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message

from ecommerce.events.v1 import envelope_pb2
from servicekit import topics
from servicekit.settings import PlatformSettings
from servicekit.topics import TOPIC_CONFIGS

log = logging.getLogger(__name__)

DEAD_LETTER_SUFFIX = ".dlq"


@dataclass(frozen=True)
class BrokerAccess:
    """Where the broker is and who this process is to it: the bootstrap servers, the security
    protocol and, with SASL, the mechanism and this process's credentials. The password stays out
    of the repr, so that logging the access never logs it."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    ssl_ca_file: Path | None = None


def broker_access(settings: PlatformSettings) -> BrokerAccess:
    """The broker access of a process of the platform, from its settings.

    In production a process refuses to start when KAFKA_SECURITY_PROTOCOL was not given (an
    unauthenticated broker is then a choice, never an accident), and warns when it is PLAINTEXT.
    """
    if settings.production and not settings.kafka_security_chosen:
        raise SystemExit(
            "KAFKA_SECURITY_PROTOCOL is required in production: SASL_SSL or SASL_PLAINTEXT with "
            "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD, or PLAINTEXT for a broker without "
            'authentication (docs/security.md, "The broker")'
        )
    if settings.production and settings.kafka_security_protocol == "PLAINTEXT":
        _warn_plaintext()
    return BrokerAccess(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        ssl_ca_file=settings.kafka_ssl_ca_file,
    )


@functools.cache
def _warn_plaintext() -> None:
    log.warning(
        "KAFKA_SECURITY_PROTOCOL=PLAINTEXT in production: this process neither authenticates to "
        "the broker nor encrypts its traffic, and the broker cannot limit what it reads or writes"
    )


def connection_options(broker: str | BrokerAccess) -> dict[str, Any]:
    """The keyword arguments that connect an aiokafka producer, consumer or admin client to the
    broker: every client of the platform is made with these, so there is one place that decides
    how a client authenticates. A plain string is a bootstrap address without authentication (the
    embedded broker of `ecommerce dev`, the tests, the benchmark and the fault-injection suite)."""
    if isinstance(broker, str):
        return {"bootstrap_servers": broker}
    options: dict[str, Any] = {
        "bootstrap_servers": broker.bootstrap_servers,
        "security_protocol": broker.security_protocol,
    }
    if broker.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        options |= {
            "sasl_mechanism": broker.sasl_mechanism,
            "sasl_plain_username": broker.username,
            "sasl_plain_password": broker.password,
        }
    if broker.security_protocol == "SASL_SSL":
        options["ssl_context"] = create_ssl_context(cafile=broker.ssl_ca_file)
    return options


def dead_letter_topic(topic: str) -> str:
    return topic + DEAD_LETTER_SUFFIX


def all_topics() -> list[str]:
    return [*topics.ALL, *(dead_letter_topic(t) for t in topics.ALL)]


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


def group_timeouts(session_timeout_ms: int) -> dict[str, int]:
    """A group consumer's session timeout and its heartbeat: three heartbeats per session timeout,
    as Kafka advises, and at most one a second."""
    return {
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": min(1_000, session_timeout_ms // 3),
    }


def create_producer(broker: str | BrokerAccess, *, idempotent: bool, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **connection_options(broker),
        client_id=client_id,
        acks="all",
        enable_idempotence=idempotent,
        linger_ms=2,
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
    )


def _tolerate_closed_transports() -> None:
    """Make a write on a connection the broker has just closed a connection error, under uvloop too.

    aiokafka turns the OSError of such a write into KafkaConnectionError, which every caller handles
    (reconnect, retry). uvloop raises RuntimeError instead ("unable to perform operation on
    <TCPTransport closed=True ...>; the handler is closed"), which nobody expects: it killed the
    producer's sender and the consumer's fetcher for good (aio-libs/aiokafka#1038, open). Here it is
    what it means, a broken connection, as aiokafka does for OSError.
    """
    send = AIOKafkaConnection.send
    if getattr(send, "tolerates_closed_transports", False):
        return

    @functools.wraps(send)
    def guarded(self: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
        try:
            return send(self, request, expect_response)
        except RuntimeError as err:
            if "closed" not in str(err):
                raise
            self.close(reason=CloseReason.CONNECTION_BROKEN)
            raise KafkaConnectionError(f"Connection at {self.host}:{self.port} broken: {err}") from err

    guarded.tolerates_closed_transports = True  # type: ignore[attr-defined]
    AIOKafkaConnection.send = guarded


_tolerate_closed_transports()


class RenewingProducer:
    """A producer that replaces its AIOKafkaProducer when that one can no longer send.

    An AIOKafkaProducer whose sender task died stays dead: every later send fails at once with
    "Unexpected error during batch delivery". Its sender dies on any error it does not expect,
    and one happens under uvloop when the broker closes a connection while a request is being
    written (uvloop raises RuntimeError there, aiokafka catches only OSError: aio-libs/aiokafka
    #1038). A relay on such a producer would never publish again; so each send first checks the
    producer, and a dead one is stopped and replaced by a new one from `factory`.

    It offers what the platform uses of a producer: start, stop, send, send_and_wait and client.
    """

    def __init__(self, factory: Callable[[], AIOKafkaProducer]) -> None:
        self._factory = factory
        self._producer = factory()
        self._started = False
        self._stopped = False
        self._renewing = asyncio.Lock()
        self.renewals = 0

    @property
    def client(self) -> Any:
        return self._producer.client

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        self._stopped = True
        await self._producer.stop()

    def dead(self) -> bool:
        """Whether the current producer's sender task ended on its own (with an error)."""
        # `_sender` is aiokafka's; `sender_task` is None until start, cancelled by stop.
        task = getattr(getattr(self._producer, "_sender", None), "sender_task", None)
        return task is not None and task.done() and not task.cancelled()

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        producer = await self._alive()
        return await producer.send(*args, **kwargs)

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> Any:
        producer = await self._alive()
        return await producer.send_and_wait(*args, **kwargs)

    async def _alive(self) -> AIOKafkaProducer:
        if self._started and not self._stopped and self.dead():
            async with self._renewing:
                if self.dead():  # not already replaced by a concurrent send
                    await self._renew()
        return self._producer

    async def _renew(self) -> None:
        old = self._producer
        log.warning("the Kafka producer's sender stopped (%s); starting a new producer", _death(old))
        with contextlib.suppress(Exception):
            await old.stop()
        fresh = self._factory()
        try:
            await fresh.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await fresh.stop()
            raise  # the old one stays, still dead: the next send tries again
        self._producer = fresh
        self.renewals += 1


def _death(producer: AIOKafkaProducer) -> str:
    task = producer._sender.sender_task
    error = task.exception() if task is not None and task.done() and not task.cancelled() else None
    cause = error.__cause__ if error is not None else None
    return f"{type(cause or error).__name__}: {cause or error}"


async def ensure_topics(
    broker: str | BrokerAccess, topics: Iterable[str], *, partitions: int, replication_factor: int = 1
) -> None:
    admin = AIOKafkaAdminClient(**connection_options(broker), client_id="ecommerce-admin")
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
                    NewTopic(
                        t,
                        num_partitions=partitions,
                        replication_factor=replication_factor,
                        topic_configs=TOPIC_CONFIGS.get(t, {}),
                    )
                    for t in missing
                ]
            )
        log.info("created topics %s", ", ".join(missing))
    finally:
        await admin.close()
