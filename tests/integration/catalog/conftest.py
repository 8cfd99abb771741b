"""The catalog in-process on a free port, against real PostgreSQL, Redis and a broker of its own.

The broker is the catalog's own embedded one: `inventory.commands` on the session's shared broker
is also read by the end-to-end platform's catalog process, which would answer our commands from
another database. Tokens are signed by a local key whose JWKS the catalog is given, as it would
fetch the account service's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message

from catalog import consumers
from catalog.__main__ import CatalogApp, build
from catalog.inventory import Inventory
from catalog.settings import CatalogSettings
from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecommerce.common.v1 import money_pb2
from servicekit.auth import JwksFetcher
from servicekit.db import transaction
from servicekit.kafka import new_envelope
from tests.integration import harness
from tests.integration.harness import Envelope


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
        await harness.produce(self.producer, "inventory.commands", envelope)
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
    keys: harness.LocalKeys
    saga: Saga
    catalog_events: list[Envelope]
    jwks: JwksFetcher

    async def execute(self, sql: str, **params: object) -> list:
        return await harness.execute(self.app.runtime.sessions, sql, **params)

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
        return self.keys.bearer(role=role)

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

    async def stock(self, product_or_variant_id: str) -> int:
        """A variant's stock, or the sum of a product's variants'."""
        [(stock,)] = await self.execute(
            "SELECT coalesce(sum(stock), 0) FROM product_variants WHERE product_id = :id OR id = :id",
            id=uuid.UUID(product_or_variant_id),
        )
        return stock


@pytest.fixture(scope="session")
async def catalog_broker(data_dir: Path) -> AsyncIterator[str]:
    async with harness.own_broker(data_dir / "catalog-broker") as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
async def catalog(infra, data_dir: Path, catalog_broker: str) -> AsyncIterator[CatalogHarness]:
    settings = CatalogSettings(
        **await harness.service_settings(
            infra,
            data_dir,
            "catalog",
            bootstrap_servers=catalog_broker,
            redis_url=redis_database(infra.redis_url, 1),
        ),
        sweeper_interval=0.2,
    )
    keys = harness.LocalKeys.for_settings(settings)
    service = harness.InProcess(lambda: build(settings, jwks=keys.jwks), catalog_pb2_grpc.CatalogServiceStub)
    published = harness.EnvelopeLog(catalog_broker, ["inventory.events", "catalog.events"])
    producer = AIOKafkaProducer(bootstrap_servers=catalog_broker, acks="all")
    await producer.start()
    try:
        async with service.running(), published.reading():
            yield CatalogHarness(
                service.app,
                service.stub,
                settings,
                keys,
                Saga(producer, published.on("inventory.events")),
                published.on("catalog.events"),
                keys.jwks,
            )
    finally:
        await producer.stop()


@pytest.fixture
async def clean_catalog(catalog: CatalogHarness) -> CatalogHarness:
    """Each test starts with no products, reservations, events or cache entries."""
    await catalog.execute("TRUNCATE products, categories, reservations, stock_orders, outbox, inbox CASCADE")
    await catalog.app.runtime.redis.flushdb()
    catalog.app.cache.hits = catalog.app.cache.misses = 0
    return catalog
