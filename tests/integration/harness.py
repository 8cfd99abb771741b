"""What every service's integration harness shares.

A service runs in-process on a free port (`InProcess`), against its own database on the session's
PostgreSQL (`service_settings`, `service_database`) and, where its commands must not reach the whole-platform tests'
processes, a broker of its own (`own_broker`). Tests call it as a signed-in caller (`LocalKeys`),
read what it published (`EnvelopeLog`), produce envelopes to it (`produce`) and look into its
database (`execute`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ecommerce.events.v1 import envelope_pb2
from servicekit.app import Running, ServiceApp
from servicekit.db import create_engine, database_url, ensure_database
from servicekit.embedded import EmbeddedBroker
from servicekit.kafka import all_topics, ensure_topics
from servicekit.migrations import upgrade_async
from servicekit.runtime import grpc_channel
from servicekit.security import SigningKey, TokenIssuer, jwks
from servicekit.settings import PlatformSettings, ServiceSettings
from tests.helpers import group_timeouts

Envelope = envelope_pb2.EventEnvelope
AppT = TypeVar("AppT", bound=ServiceApp)
StubT = TypeVar("StubT")
Metadata = list[tuple[str, str]]


@contextlib.asynccontextmanager
async def scratch_database(infra: Any, name: str, *setup: str) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """A test's own database `name` on the session's PostgreSQL (created if missing), its URL and an
    engine of two connections, after running the `setup` statements in one transaction."""
    url = database_url(infra.postgres_url, name)
    await ensure_database(url)
    engine = create_engine(url, pool_size=2)
    try:
        async with engine.begin() as conn:
            for statement in setup:
                await conn.execute(text(statement))
        yield url, engine
    finally:
        await engine.dispose()


async def service_database(infra: Any, service: str) -> str:
    """The URL of `<service>_it` on the session's PostgreSQL, created and migrated to head."""
    url = database_url(infra.postgres_url, f"{service}_it")
    await ensure_database(url)
    await upgrade_async(service, url)
    return url


async def service_settings(
    infra: Any,
    data_dir: Path,
    service: str,
    *,
    bootstrap_servers: str | None = None,
    redis_url: str | None = None,
) -> dict[str, Any]:
    """The settings every in-process service shares, as keyword arguments of its settings class:
    its migrated database, the session's Redis and broker (unless given others), a free gRPC port
    and a quick outbox relay."""
    return {
        "database_url": await service_database(infra, service),
        "redis_url": redis_url or infra.redis_url,
        "kafka_bootstrap_servers": bootstrap_servers or infra.kafka_bootstrap_servers,
        "grpc_port": 0,
        "data_dir": data_dir,
        "outbox_poll_interval": 0.2,
    }


@contextlib.asynccontextmanager
async def own_broker(path: Path) -> AsyncIterator[EmbeddedBroker]:
    """An embedded broker of the harness's own with every topic (three partitions). Kept apart from the session's broker so that the whole-platform tests' services never
    take the harness's commands, nor the harness theirs."""
    broker = await asyncio.to_thread(EmbeddedBroker(path).start)
    try:
        await ensure_topics(broker.bootstrap_servers, all_topics(), partitions=3)
        yield broker
    finally:
        await asyncio.to_thread(broker.stop)


async def execute(sessions: async_sessionmaker[AsyncSession], sql: str, **params: object) -> list:
    """Run one statement in its own transaction; its rows, if it returns any."""
    async with sessions() as session, session.begin():
        result = await session.execute(text(sql), params)
        return list(result.all()) if result.returns_rows else []


@dataclass
class LocalKeys:
    """A signing key of the test's own: services are given its JWKS as the account service's."""

    key: SigningKey
    issuer: TokenIssuer

    @classmethod
    def for_settings(cls, settings: PlatformSettings) -> LocalKeys:
        key = SigningKey.generate()
        return cls(key, TokenIssuer(key, issuer=settings.jwt_issuer, audience=settings.jwt_audience))

    async def jwks(self) -> dict:
        return jwks([self.key])

    def bearer(self, account_id: str | None = None, role: str = "CUSTOMER") -> Metadata:
        """The metadata of a caller signed in as `account_id` (a new one by default) with `role`."""
        token, _ = self.issuer.issue(account_id or str(uuid.uuid4()), role)
        return [("authorization", f"Bearer {token}")]


class InProcess(Generic[AppT, StubT]):
    """A service built by `build()` and served in-process on a free port; it can be stopped and
    started again (a new app each time, as a restarted process would be)."""

    def __init__(
        self, build: Callable[[], AppT], stub: Callable[[grpc.aio.Channel], StubT], *, background: bool = True
    ) -> None:
        self._build = build
        self._stub = stub
        self._background = background
        self._running: tuple[AppT, Running, grpc.aio.Channel] | None = None

    @property
    def app(self) -> AppT:
        assert self._running is not None, "the service is stopped"
        return self._running[0]

    @property
    def settings(self) -> ServiceSettings:
        return self.app.runtime.settings

    @property
    def port(self) -> int:
        assert self._running is not None, "the service is stopped"
        return self._running[1].port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def stub(self) -> StubT:
        assert self._running is not None, "the service is stopped"
        return self._stub(self._running[2])

    async def start(self) -> InProcess[AppT, StubT]:
        app = self._build()
        running = await app.start(background=self._background)
        # Called as a peer service would: over mutual TLS when the service's settings turn it on.
        channel = grpc_channel(f"127.0.0.1:{running.port}", tls=app.runtime.tls)
        self._running = (app, running, channel)
        return self

    async def stop(self) -> None:
        assert self._running is not None, "the service is stopped"
        app, running, channel = self._running
        self._running = None
        await channel.close()
        await app.stop(running)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[InProcess[AppT, StubT]]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()


@dataclass
class EnvelopeLog:
    """Every envelope on `topics` from their beginning, in arrival order, by topic and in all."""

    bootstrap_servers: str
    topics: Iterable[str]
    records: list[tuple[str, bytes | None, Envelope]] = field(default_factory=list)
    by_topic: dict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    _task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[EnvelopeLog]:
        """Read in the background while the block runs; the block starts once partitions are assigned."""
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap_servers,
            group_id=f"it-log-{uuid.uuid4().hex}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **group_timeouts(),
        )
        await consumer.start()
        assigned = asyncio.Event()
        self._task = asyncio.create_task(self._collect(consumer, assigned))
        try:
            await asyncio.wait_for(assigned.wait(), 30)
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            await consumer.stop()

    async def _collect(self, consumer: AIOKafkaConsumer, assigned: asyncio.Event) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            if consumer.assignment():
                assigned.set()
            for records in batches.values():
                for record in records:
                    envelope = Envelope.FromString(record.value)
                    self.records.append((record.topic, record.key, envelope))
                    self.by_topic[record.topic].append(envelope)

    def on(self, topic: str) -> list[Envelope]:
        """The live list of `topic`'s envelopes: it grows as they arrive."""
        return self.by_topic[topic]


async def produce(producer: AIOKafkaProducer, topic: str, envelope: Envelope) -> None:
    """Produce an envelope as it is, keyed by its aggregate: producing one twice is a duplicate delivery."""
    await producer.send_and_wait(topic, envelope.SerializeToString(), key=envelope.aggregate_id.encode())
