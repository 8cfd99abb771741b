"""The payment service in-process on a free port, against the session's real servers.

Commands are produced to the real broker and replies read back from `payment.events`. The harness
consumes a commands topic of its own, so that a payment process of the end-to-end platform
(which shares the broker within one test session) never takes its commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.message import Message
from sqlalchemy import text

from ecommerce.common.v1 import money_pb2
from ecommerce.events.v1 import envelope_pb2, payment_events_pb2
from ecommerce.payment.v1 import payment_pb2_grpc
from payment import grpc_api
from payment.__main__ import PaymentApp, build
from payment.settings import PaymentSettings
from servicekit import topics
from servicekit.db import database_url, ensure_database, transaction
from servicekit.kafka import create_producer, dead_letter_topic, ensure_topics, new_envelope
from servicekit.messages import Cause
from servicekit.migrations import upgrade_async
from servicekit.runtime import shutdown, start
from servicekit.security import SigningKey, TokenIssuer, jwks
from servicekit.topics import PaymentCommand
from tests.helpers import eventually

Envelope = envelope_pb2.EventEnvelope


@dataclass
class Replies:
    """Everything on payment.events since the session began, by order id."""

    by_order: dict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))

    def of_order(self, order_id: str) -> list[Envelope]:
        return list(self.by_order.get(order_id, []))

    def answering(self, event_id: str) -> list[Envelope]:
        return [e for replies in self.by_order.values() for e in replies if e.causation_id == event_id]


@dataclass
class PaymentHarness:
    app: PaymentApp
    stub: payment_pb2_grpc.PaymentServiceStub
    address: str
    settings: PaymentSettings
    issuer: TokenIssuer
    commands_topic: str
    producer: object
    replies: Replies

    # -- callers ----------------------------------------------------------------------------

    def bearer(self, account_id: str | None = None, role: str = "CUSTOMER") -> list[tuple[str, str]]:
        token, _ = self.issuer.issue(account_id or str(uuid.uuid4()), role)
        return [("authorization", f"Bearer {token}")]

    def admin(self) -> list[tuple[str, str]]:
        return self.bearer(str(uuid.uuid4()), "ADMIN")

    # -- commands and replies ---------------------------------------------------------------

    async def send(
        self, event_type: str, order_id: str, payload: Message, *, event_id: str | None = None
    ) -> Envelope:
        envelope = new_envelope(
            event_type=event_type, aggregate_id=order_id, producer="order", payload=payload, event_id=event_id
        )
        await self.send_envelope(envelope)
        return envelope

    async def send_envelope(self, envelope: Envelope) -> None:
        await self.producer.send_and_wait(  # type: ignore[attr-defined]
            self.commands_topic, value=envelope.SerializeToString(), key=envelope.aggregate_id.encode()
        )

    async def authorize(
        self,
        order_id: str,
        token: str = "tok_visa",
        *,
        account_id: str | None = None,
        amount_minor: int = 4999,
        currency: str = "EUR",
        event_id: str | None = None,
    ) -> Envelope:
        """Send AuthorizePayment and wait for its one reply."""
        command = authorize_command(
            order_id, token, account_id=account_id, amount_minor=amount_minor, currency=currency
        )
        sent = await self.send(PaymentCommand.AUTHORIZE_PAYMENT, order_id, command, event_id=event_id)
        return await self.reply_to(sent)

    async def reply_to(self, sent: Envelope, *, timeout: float = 20.0) -> Envelope:
        replies = await eventually(
            lambda: _ready(self.replies.answering(sent.event_id)),
            timeout=timeout,
            what=f"the reply to {sent.event_type} {sent.event_id}",
        )
        return replies[0]

    async def pay(self, order_id: str, account_id: str, token: str = "tok_visa") -> None:
        """Run AuthorizePayment's handler directly (no broker), provider call included."""
        async with transaction(self.app.runtime.sessions) as session:
            follow_up = await self.app.service.authorize_order(
                session,
                order_id=order_id,
                account_id=account_id,
                amount_minor=4999,
                currency="EUR",
                token=token,
                idempotency_key=f"order-{order_id}",
                cause=Cause(str(uuid.uuid4()), order_id),
            )
        if follow_up is not None:
            await follow_up()

    # -- the database -----------------------------------------------------------------------

    async def execute(self, sql: str, **params: object) -> list:
        async with self.app.runtime.sessions() as session, session.begin():
            result = await session.execute(text(sql), params)
            return list(result.all()) if result.returns_rows else []

    async def count(self, table: str, where: str = "true", **params: object) -> int:
        [(n,)] = await self.execute(f"SELECT count(*) FROM {table} WHERE {where}", **params)
        return int(n)


async def _ready(value: list) -> list:
    return value


def authorize_command(
    order_id: str,
    token: str = "tok_visa",
    *,
    account_id: str | None = None,
    amount_minor: int = 4999,
    currency: str = "EUR",
    idempotency_key: str | None = None,
) -> payment_events_pb2.AuthorizePayment:
    return payment_events_pb2.AuthorizePayment(
        order_id=order_id,
        account_id=account_id or str(uuid.uuid4()),
        amount=money_pb2.Money(amount_minor=amount_minor, currency=currency),
        payment_token=token,
        idempotency_key=idempotency_key if idempotency_key is not None else f"order-{order_id}",
    )


async def _collect(bootstrap: str, replies: Replies, assigned: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        topics.PAYMENT_EVENTS,
        bootstrap_servers=bootstrap,
        group_id=f"payment-it-replies-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            if consumer.assignment():
                assigned.set()
            for records in batches.values():
                for record in records:
                    envelope = Envelope.FromString(record.value)
                    replies.by_order[envelope.aggregate_id].append(envelope)
    finally:
        await consumer.stop()


@pytest.fixture(scope="session")
async def payment(infra, data_dir: Path) -> AsyncIterator[PaymentHarness]:
    url = database_url(infra.postgres_url, "payment_it")
    await ensure_database(url)
    await upgrade_async("payment", url)
    commands_topic = f"payment.commands.it-{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        infra.kafka_bootstrap_servers,
        [commands_topic, dead_letter_topic(commands_topic), topics.PAYMENT_EVENTS],
        partitions=3,
    )
    settings = PaymentSettings(
        database_url=url,
        redis_url=infra.redis_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        grpc_port=0,
        data_dir=data_dir,
        outbox_poll_interval=0.2,
        consumer_max_attempts=2,
        provider_timeout=0.5,
        retry_attempts=2,
        backoff_base=0.01,
        backoff_max=0.05,
        breaker_failure_threshold=3,
        breaker_cool_down=1.0,
        simulated_hang=30.0,
    )
    key = SigningKey.generate()
    issuer = TokenIssuer(key, issuer=settings.jwt_issuer, audience=settings.jwt_audience)

    async def own_keys() -> dict:
        return jwks([key])

    app = build(settings, jwks=own_keys)
    app.consumer.topics = [commands_topic]
    app.consumer.group_id = f"payment-it-{uuid.uuid4().hex[:8]}"
    server, health, port = await start(
        app.runtime,
        [grpc_api.registration(app.servicer)],
        [grpc_api.SERVICE_NAME],
        authenticator=app.authenticator,
        start_background=app.start_background,
    )
    producer = create_producer(infra.kafka_bootstrap_servers, idempotent=False, client_id="payment-it")
    await producer.start()
    replies = Replies()
    assigned = asyncio.Event()
    collector = asyncio.create_task(_collect(infra.kafka_bootstrap_servers, replies, assigned))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        await asyncio.wait_for(assigned.wait(), 30)
        yield PaymentHarness(
            app=app,
            stub=payment_pb2_grpc.PaymentServiceStub(channel),
            address=f"127.0.0.1:{port}",
            settings=settings,
            issuer=issuer,
            commands_topic=commands_topic,
            producer=producer,
            replies=replies,
        )
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        await channel.close()
        await producer.stop()
        await shutdown(app.runtime, server, health, [grpc_api.SERVICE_NAME])


@pytest.fixture
async def clean_payments(payment: PaymentHarness) -> PaymentHarness:
    """Each test starts with no payments, provider books or events, and a closed breaker."""
    await payment.execute(
        "TRUNCATE payments, refunds, voided_orders, simulated_ledger, outbox, inbox CASCADE"
    )
    payment.app.service.breaker.reset()
    payment.app.provider.calls.clear()
    return payment
