"""The payment service in-process on a free port, against the session's real servers.

Commands are produced to the real broker and replies read back from `payment.events`. The harness
consumes a commands topic of its own, so that a payment process of the end-to-end platform
(which shares the broker within one test session) never takes its commands.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message

from ecommerce.common.v1 import money_pb2
from ecommerce.events.v1 import payment_events_pb2
from ecommerce.payment.v1 import payment_pb2_grpc
from payment.__main__ import PaymentApp, build
from payment.settings import PaymentSettings
from servicekit import topics
from servicekit.db import transaction
from servicekit.kafka import create_producer, dead_letter_topic, ensure_topics, new_envelope
from servicekit.messages import Cause
from servicekit.topics import PaymentCommand
from tests.helpers import eventually
from tests.integration import harness
from tests.integration.harness import Envelope


@dataclass
class Replies:
    """Everything on payment.events since the session began."""

    log: harness.EnvelopeLog

    def of_order(self, order_id: str) -> list[Envelope]:
        return [e for e in self.log.on(topics.PAYMENT_EVENTS) if e.aggregate_id == order_id]

    def answering(self, event_id: str) -> list[Envelope]:
        return [e for e in self.log.on(topics.PAYMENT_EVENTS) if e.causation_id == event_id]


@dataclass
class PaymentHarness:
    app: PaymentApp
    stub: payment_pb2_grpc.PaymentServiceStub
    address: str
    settings: PaymentSettings
    keys: harness.LocalKeys
    commands_topic: str
    producer: AIOKafkaProducer
    replies: Replies

    # -- callers ----------------------------------------------------------------------------

    def bearer(self, account_id: str | None = None, role: str = "CUSTOMER") -> list[tuple[str, str]]:
        return self.keys.bearer(account_id, role)

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
        await harness.produce(self.producer, self.commands_topic, envelope)

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
        return await harness.execute(self.app.runtime.sessions, sql, **params)

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


@pytest.fixture(scope="session")
async def payment(infra, data_dir: Path) -> AsyncIterator[PaymentHarness]:
    commands_topic = f"payment.commands.it-{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        infra.kafka_bootstrap_servers,
        [commands_topic, dead_letter_topic(commands_topic), topics.PAYMENT_EVENTS],
        partitions=3,
    )
    settings = PaymentSettings(
        **await harness.service_settings(infra, data_dir, "payment"),
        consumer_max_attempts=2,
        provider_timeout=0.5,
        retry_attempts=2,
        backoff_base=0.01,
        backoff_max=0.05,
        breaker_failure_threshold=3,
        breaker_cool_down=1.0,
        simulated_hang=30.0,
    )
    keys = harness.LocalKeys.for_settings(settings)

    def build_on_own_topic() -> PaymentApp:
        app = build(settings, jwks=keys.jwks)
        app.consumer.topics = [commands_topic]
        app.consumer.group_id = f"payment-it-{uuid.uuid4().hex[:8]}"
        return app

    service = harness.InProcess(build_on_own_topic, payment_pb2_grpc.PaymentServiceStub)
    log = harness.EnvelopeLog(infra.kafka_bootstrap_servers, [topics.PAYMENT_EVENTS])
    producer = create_producer(infra.kafka_bootstrap_servers, idempotent=False, client_id="payment-it")
    await producer.start()
    try:
        async with service.running(), log.reading():
            yield PaymentHarness(
                app=service.app,
                stub=service.stub,
                address=service.address,
                settings=settings,
                keys=keys,
                commands_topic=commands_topic,
                producer=producer,
                replies=Replies(log),
            )
    finally:
        await producer.stop()


@pytest.fixture
async def clean_payments(payment: PaymentHarness) -> PaymentHarness:
    """Each test starts with no payments, provider books or events, and a closed breaker."""
    await payment.execute(
        "TRUNCATE payments, refunds, voided_orders, simulated_ledger, outbox, inbox CASCADE"
    )
    payment.app.service.breaker.reset()
    payment.app.provider.calls.clear()
    return payment
