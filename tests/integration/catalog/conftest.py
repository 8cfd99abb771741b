"""The catalog in-process on a free port, against real PostgreSQL, Redis and a broker of its own.

The broker is the catalog's own embedded one: `inventory.commands` on the session's shared broker
is also read by the end-to-end platform's catalog process, which would answer our commands from
another database. Tokens are signed by a local key whose JWKS the catalog is given, as it would
fetch the account service's.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from google.protobuf.message import Message
from sqlalchemy import text

from catalog import consumers, grpc_api
from catalog.__main__ import CatalogApp, build
from catalog.inventory import Inventory
from catalog.settings import CatalogSettings
from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecommerce.common.v1 import money_pb2
from ecommerce.events.v1 import envelope_pb2
from servicekit.auth import JwksFetcher
from servicekit.db import database_url, ensure_database, transaction
from servicekit.embedded import EmbeddedBroker
from servicekit.kafka import all_topics, ensure_topics, new_envelope
from servicekit.migrations import upgrade_async
from servicekit.runtime import shutdown, start
from servicekit.security import SigningKey, TokenIssuer, jwks
from tests.helpers import group_timeouts

Envelope = envelope_pb2.EventEnvelope


def redis_database(url: str, number: int) -> str:
    """The same Redis server, another logical database: the catalog's keys stay apart."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{number}"))


@dataclass
class Saga:
    """Plays the order service: sends inventory commands through the broker, collects the replies."""

    producer: AIOKafkaProducer
    replies: list[Envelope] = field(default_factory=list)

    async def send(
        self, event_type: str, payload: Message, order_id: str, *, event_id: str | None = None
    ) -> Envelope:
        envelope = new_envelope(
            event_type=event_type,
            aggregate_id=order_id,
            producer="order",
            payload=payload,
            event_id=event_id,
        )
        await self.producer.send_and_wait(
            "inventory.commands", envelope.SerializeToString(), key=order_id.encode()
        )
        return envelope

    def answers(self, command: Envelope) -> list[Envelope]:
        return [r for r in self.replies if r.causation_id == command.event_id]

    def about(self, aggregate_id: str) -> list[Envelope]:
        return [r for r in self.replies if r.aggregate_id == aggregate_id]


@dataclass
class CatalogHarness:
    app: CatalogApp
    stub: catalog_pb2_grpc.CatalogServiceStub
    settings: CatalogSettings
    issuer: TokenIssuer
    saga: Saga
    catalog_events: list[Envelope]
    jwks: JwksFetcher

    async def execute(self, sql: str, **params: object) -> list:
        async with self.app.runtime.sessions() as session, session.begin():
            result = await session.execute(text(sql), params)
            return list(result.all()) if result.returns_rows else []

    async def handle(
        self, event_type: str, command: Message, order_id: str, *, inventory: Inventory | None = None
    ) -> Envelope:
        """Run a command's handler in its own transaction, as the consumer does, without the broker:
        what concurrency tests need, since the consumer handles one message at a time."""
        envelope = new_envelope(
            event_type=event_type, aggregate_id=order_id, producer="order", payload=command
        )
        handlers = self.app.consumer.handlers if inventory is None else consumers.handlers(inventory)
        async with transaction(self.app.runtime.sessions) as session:
            await handlers[event_type](session, envelope)
        return envelope

    async def answers(self, order_id: str) -> list[Envelope]:
        """The saga answers written for an order, oldest first (from the outbox, before any relay)."""
        rows = await self.execute(
            "SELECT payload FROM outbox WHERE topic = 'inventory.events' AND key = :key ORDER BY id",
            key=order_id,
        )
        return [Envelope.FromString(row[0]) for row in rows]

    def token(self, role: str = "ADMIN") -> list[tuple[str, str]]:
        access_token, _ = self.issuer.issue(str(uuid.uuid4()), role)
        return [("authorization", f"Bearer {access_token}")]

    @property
    def admin(self) -> list[tuple[str, str]]:
        return self.token("ADMIN")

    async def category(self, slug: str | None = None, name: str = "Audio") -> catalog_pb2.Category:
        response = await self.stub.CreateCategory(
            catalog_pb2.CreateCategoryRequest(name=name, slug=slug or f"cat-{uuid.uuid4().hex[:10]}"),
            metadata=self.admin,
        )
        return response.category

    async def product(
        self,
        category: catalog_pb2.Category,
        *,
        name: str = "Desk Lamp",
        description: str = "",
        price_minor: int = 1999,
        currency: str = "USD",
        stock: int = 10,
        featured: bool = False,
        sku: str | None = None,
        low_stock_threshold: int | None = None,
    ) -> catalog_pb2.Product:
        request = catalog_pb2.CreateProductRequest(
            sku=sku or f"SKU-{uuid.uuid4().hex[:12]}",
            name=name,
            description=description,
            price=money_pb2.Money(amount_minor=price_minor, currency=currency),
            category_slug=category.slug,
            stock=stock,
            featured=featured,
        )
        if low_stock_threshold is not None:
            request.low_stock_threshold = low_stock_threshold
        return (await self.stub.CreateProduct(request, metadata=self.admin)).product

    async def stock(self, product_id: str) -> int:
        [(stock,)] = await self.execute("SELECT stock FROM products WHERE id = :id", id=uuid.UUID(product_id))
        return stock


async def _collect(consumer: AIOKafkaConsumer, into: dict[str, list[Envelope]]) -> None:
    async for record in consumer:
        into[record.topic].append(Envelope.FromString(record.value))


@pytest.fixture(scope="session")
async def catalog_broker(data_dir: Path) -> AsyncIterator[str]:
    broker = await asyncio.to_thread(EmbeddedBroker(data_dir / "catalog-broker").start)
    try:
        await ensure_topics(broker.bootstrap_servers, all_topics(), partitions=3)
        yield broker.bootstrap_servers
    finally:
        await asyncio.to_thread(broker.stop)


@pytest.fixture(scope="session")
async def catalog(infra, data_dir: Path, catalog_broker: str) -> AsyncIterator[CatalogHarness]:
    url = database_url(infra.postgres_url, "catalog_it")
    await ensure_database(url)
    await upgrade_async("catalog", url)
    settings = CatalogSettings(
        database_url=url,
        redis_url=redis_database(infra.redis_url, 1),
        kafka_bootstrap_servers=catalog_broker,
        grpc_port=0,
        data_dir=data_dir,
        outbox_poll_interval=0.2,
        sweeper_interval=0.2,
    )
    key = SigningKey.generate()
    issuer = TokenIssuer(key, issuer=settings.jwt_issuer, audience=settings.jwt_audience)

    async def local_jwks() -> dict:
        return jwks([key])

    app = build(settings, jwks=local_jwks)
    server, health, port = await start(
        app.runtime,
        [grpc_api.registration(app.servicer)],
        [grpc_api.SERVICE_NAME],
        authenticator=app.authenticator,
        start_background=app.start_background,
    )
    seen: dict[str, list[Envelope]] = {"inventory.events": [], "catalog.events": []}
    listener = AIOKafkaConsumer(
        *seen,
        bootstrap_servers=catalog_broker,
        group_id=f"catalog-it-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        **group_timeouts(),
    )
    producer = AIOKafkaProducer(bootstrap_servers=catalog_broker, acks="all")
    await listener.start()
    await producer.start()
    collecting = asyncio.create_task(_collect(listener, seen))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield CatalogHarness(
            app,
            catalog_pb2_grpc.CatalogServiceStub(channel),
            settings,
            issuer,
            Saga(producer, seen["inventory.events"]),
            seen["catalog.events"],
            local_jwks,
        )
    finally:
        collecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collecting
        await channel.close()
        await producer.stop()
        await listener.stop()
        await shutdown(app.runtime, server, health, [grpc_api.SERVICE_NAME])


@pytest.fixture
async def clean_catalog(catalog: CatalogHarness) -> CatalogHarness:
    """Each test starts with no products, reservations, events or cache entries."""
    await catalog.execute("TRUNCATE products, categories, reservations, stock_orders, outbox, inbox CASCADE")
    await catalog.app.runtime.redis.flushdb()
    catalog.app.cache.hits = catalog.app.cache.misses = 0
    return catalog
