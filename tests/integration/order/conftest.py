"""The order service in-process against real PostgreSQL, Redis and a real broker of its own.

The saga's participants are played by the test over Kafka (`Bus`): it reads the commands the
service sends and produces the replies it chooses, so every reply order, duplicate and silence
can be staged. The two lookups CreateOrder makes synchronously (prices from the catalog, the
payment token) are answered by small in-process gRPC servers with fixed data.

The broker is this package's own embedded one, so that the whole-platform tests' catalog and
payment services (which may run in the same session) never see these commands.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecommerce.common.v1 import money_pb2
from ecommerce.events.v1 import envelope_pb2
from ecommerce.order.v1 import order_pb2_grpc
from ecommerce.payment.v1 import payment_pb2, payment_pb2_grpc
from order.__main__ import OrderApp, build
from order.settings import OrderSettings
from servicekit.db import create_engine, session_factory
from servicekit.embedded import EmbeddedBroker
from servicekit.kafka import create_producer, new_envelope
from tests.helpers import eventually
from tests.integration import harness

VALID_TOKENS = {"tok_visa", "tok_chargeDeclined", "tok_timeout", "tok_unavailable"}


# -- stand-ins for the synchronous lookups --------------------------------------------------------


@dataclass
class CatalogStandIn(catalog_pb2_grpc.CatalogServiceServicer):
    products: dict[str, catalog_pb2.Product] = field(default_factory=dict)
    calls: list[tuple[list[str], str]] = field(default_factory=list)

    def add(
        self, *, price_minor: int = 1999, currency: str = "EUR", archived: bool = False, name: str = ""
    ) -> str:
        product_id = str(uuid.uuid4())
        self.products[product_id] = catalog_pb2.Product(
            id=product_id,
            sku=f"SKU-{product_id[:8]}",
            name=name or f"Product {product_id[:8]}",
            price=money_pb2.Money(amount_minor=price_minor, currency=currency),
            stock=100,
            archived=archived,
        )
        return product_id

    async def BatchGetProducts(self, request, context):  # type: ignore[no-untyped-def]
        authorization = dict(context.invocation_metadata() or ()).get("authorization", "")
        self.calls.append((list(request.product_ids), authorization))
        found = [self.products[i] for i in request.product_ids if i in self.products]
        return catalog_pb2.BatchGetProductsResponse(products=found)


@dataclass
class PaymentStandIn(payment_pb2_grpc.PaymentServiceServicer):
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def ValidatePaymentToken(self, request, context):  # type: ignore[no-untyped-def]
        authorization = dict(context.invocation_metadata() or ()).get("authorization", "")
        self.calls.append((request.payment_token, authorization))
        if request.payment_token in VALID_TOKENS:
            return payment_pb2.ValidatePaymentTokenResponse(valid=True)
        return payment_pb2.ValidatePaymentTokenResponse(
            valid=False, message="the provider does not know this token"
        )


@dataclass
class PeerServer:
    """One in-process gRPC server that can be stopped and started again on its port."""

    register: Any
    servicer: Any
    port: int = 0
    server: grpc.aio.Server | None = None

    async def start(self) -> None:
        self.server = grpc.aio.server()
        self.register(self.servicer, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)
            self.server = None


# -- the bus: the test as catalog and payment ------------------------------------------------------


class Bus:
    """Reads every command and order fact, and produces the participants' replies."""

    TOPICS = ("inventory.commands", "payment.commands", "order.events")

    def __init__(self, log: harness.EnvelopeLog, producer: AIOKafkaProducer) -> None:
        self.log = log
        self.records = log.records
        self.producer = producer

    def sent(self, order_id: str, event_type: str | None = None) -> list[envelope_pb2.EventEnvelope]:
        return [
            envelope
            for _, _, envelope in self.records
            if envelope.aggregate_id == order_id and (event_type is None or envelope.event_type == event_type)
        ]

    def types(self, order_id: str, topic_prefix: str = "") -> list[str]:
        return [
            envelope.event_type
            for topic, _, envelope in self.records
            if envelope.aggregate_id == order_id and topic.startswith(topic_prefix)
        ]

    async def wait_for(
        self, order_id: str, event_type: str, count: int = 1, timeout: float = 15.0
    ) -> list[envelope_pb2.EventEnvelope]:
        async def enough() -> list[envelope_pb2.EventEnvelope] | None:
            found = self.sent(order_id, event_type)
            return found if len(found) >= count else None

        return await eventually(enough, timeout=timeout, what=f"{count} x {event_type} for {order_id}")

    async def reply(
        self, event_type: str, order_id: str, payload: Message, *, causation_id: str = ""
    ) -> envelope_pb2.EventEnvelope:
        """Publish a participant's reply as the catalog or payment service would."""
        topic = "inventory.events" if event_type.startswith("inventory.") else "payment.events"
        envelope = new_envelope(
            event_type=event_type,
            aggregate_id=order_id,
            producer=topic.split(".")[0],
            payload=payload,
            causation_id=causation_id,
        )
        await self.deliver(topic, envelope)
        return envelope

    async def deliver(self, topic: str, envelope: envelope_pb2.EventEnvelope) -> None:
        """Produce an envelope as it is: delivering one twice is a duplicate delivery."""
        await harness.produce(self.producer, topic, envelope)


# -- the harness ------------------------------------------------------------------------------------


@dataclass
class OrderHarness:
    service: harness.InProcess[OrderApp, order_pb2_grpc.OrderServiceStub]
    catalog: CatalogStandIn
    catalog_server: PeerServer
    payments: PaymentStandIn
    bus: Bus
    keys: harness.LocalKeys
    # The test's own connections, usable while the service is stopped.
    sessions: async_sessionmaker[AsyncSession]

    @property
    def app(self) -> OrderApp:
        return self.service.app

    @property
    def stub(self) -> order_pb2_grpc.OrderServiceStub:
        return self.service.stub

    async def stop_service(self) -> None:
        await self.service.stop()

    async def start_service(self) -> None:
        await self.service.start()

    def token(
        self, account_id: str | None = None, role: str = "CUSTOMER"
    ) -> tuple[str, list[tuple[str, str]]]:
        """A new caller: its account id and the metadata that carries its token."""
        account_id = account_id or str(uuid.uuid4())
        return account_id, self.keys.bearer(account_id, role)

    async def execute(self, sql: str, **params: object) -> list:
        return await harness.execute(self.sessions, sql, **params)

    async def scalar(self, sql: str, **params: object) -> Any:
        rows = await self.execute(sql, **params)
        return rows[0][0] if rows else None

    async def expire_step(self, order_id: str) -> int:
        """Let the current step's deadline pass (as time would); returns the attempts so far."""
        rows = await self.execute(
            "UPDATE orders SET saga_deadline_at = now() - interval '1 second' "
            "WHERE id = :id AND saga_step IS NOT NULL RETURNING saga_attempts",
            id=order_id,
        )
        assert rows, f"order {order_id} has no step in flight"
        return int(rows[0][0])


@pytest.fixture(scope="session")
async def order_broker(data_dir: Path) -> AsyncIterator[EmbeddedBroker]:
    async with harness.own_broker(data_dir / "order-it-broker") as broker:
        yield broker


@pytest.fixture(scope="session")
async def order_harness(infra, data_dir: Path, order_broker: EmbeddedBroker) -> AsyncIterator[OrderHarness]:
    common = await harness.service_settings(
        infra, data_dir, "order", bootstrap_servers=order_broker.bootstrap_servers
    )
    catalog = CatalogStandIn()
    catalog_server = PeerServer(catalog_pb2_grpc.add_CatalogServiceServicer_to_server, catalog)
    payments = PaymentStandIn()
    payment_server = PeerServer(payment_pb2_grpc.add_PaymentServiceServicer_to_server, payments)
    await catalog_server.start()
    await payment_server.start()

    settings = OrderSettings(
        **common,
        catalog_addr=f"127.0.0.1:{catalog_server.port}",
        payment_addr=f"127.0.0.1:{payment_server.port}",
        # Deadlines pass only when a test says so (OrderHarness.expire_step).
        step_deadline_seconds=600,
        payment_retry_delay_seconds=600,
        step_retry_budget=2,
        saga_tick_interval=0.1,
        peer_timeout=2.0,
    )
    keys = harness.LocalKeys.for_settings(settings)

    def build_with_local_keys() -> OrderApp:
        app = build(settings)
        app.authenticator = app.runtime.authenticator(keys.jwks)
        return app

    producer = create_producer(order_broker.bootstrap_servers, idempotent=False, client_id="order-it-bus")
    await producer.start()
    log = harness.EnvelopeLog(order_broker.bootstrap_servers, Bus.TOPICS)
    service = harness.InProcess(build_with_local_keys, order_pb2_grpc.OrderServiceStub)
    engine = create_engine(settings.database_url, pool_size=4)
    try:
        async with log.reading(), service.running():
            yield OrderHarness(
                service, catalog, catalog_server, payments, Bus(log, producer), keys, session_factory(engine)
            )
    finally:
        await engine.dispose()
        await producer.stop()
        await catalog_server.stop()
        await payment_server.stop()


@pytest.fixture
async def orders(order_harness: OrderHarness) -> OrderHarness:
    """Each test starts with no orders and an empty outbox."""
    await order_harness.execute(
        "TRUNCATE orders, order_items, order_history, outbox, inbox, carts, coupons, shipping_methods, "
        "tax_rates CASCADE"
    )
    # The trigger announces the emptied terms; the process hears it a moment later, the test's
    # first cart may come sooner.
    order_harness.app.service.terms.forget()
    order_harness.catalog.calls.clear()
    order_harness.payments.calls.clear()
    return order_harness
