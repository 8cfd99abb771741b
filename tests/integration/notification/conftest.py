"""The notification service in-process, fed real envelopes through a real broker of its own.

Around it: the session's real account service (recipients are looked up there, as this service
itself, with the internal credential), a real SMTP server on loopback (`servicekit.mailbox`,
stopped and started by the tests that need it down), and a real HTTP server on loopback that
receives webhooks and answers what a test tells it to.

The broker is this package's own embedded one, so that the whole-platform tests' notification
service (which may run in the same session) never sees these events, nor this one theirs.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.message import Message

from ecommerce.account.v1 import account_pb2
from ecommerce.common.v1 import money_pb2
from ecommerce.events.v1 import envelope_pb2, order_events_pb2
from ecommerce.notification.v1 import notification_pb2_grpc
from ecommerce.order.v1 import order_pb2
from notification import consumers
from notification.__main__ import NotificationApp, build
from notification.delivery import Backoff
from notification.settings import NotificationSettings
from notification.webhooks import UrlPolicy
from servicekit.embedded import EmbeddedBroker
from servicekit.kafka import create_producer, new_envelope
from servicekit.mailbox import Mailbox
from servicekit.rpc_status import parse_rpc_error
from tests.helpers import eventually, unique_email
from tests.integration.conftest import AccountHarness
from tests.integration.harness import InProcess, execute, own_broker, produce, service_settings
from tests.integration.notification.receiver import Receiver

MAIL_BACKOFF = Backoff(initial=0.05, maximum=0.2, max_attempts=4)
WEBHOOK_BACKOFF = Backoff(initial=0.05, maximum=0.2, max_attempts=4)


# -- the harness ----------------------------------------------------------------------------------


@dataclass
class Customer:
    account_id: str
    email: str
    name: str
    metadata: list[tuple[str, str]]


@dataclass
class NotificationHarness:
    app: NotificationApp
    stub: notification_pb2_grpc.NotificationServiceStub
    settings: NotificationSettings
    account: AccountHarness
    mailbox: Mailbox
    receiver: Receiver
    bootstrap_servers: str
    producer: Any

    @property
    def service(self):  # type: ignore[no-untyped-def]
        return self.app.service

    # -- callers

    async def customer(self, name: str = "Ada Lovelace") -> Customer:
        email = unique_email("shopper")
        response = await self.account.stub.Register(
            account_pb2.RegisterRequest(email=email, name=name, password="correct horse battery")
        )
        metadata = [("authorization", f"Bearer {response.tokens.access_token}")]
        return Customer(response.account.id, email, name, metadata)

    def admin(self) -> list[tuple[str, str]]:
        token, _ = self.account.app.service.issuer.issue(str(uuid.uuid4()), "ADMIN")
        return [("authorization", f"Bearer {token}")]

    # -- events

    async def publish(
        self, event_type: str, payload: Message, *, aggregate_id: str = "", event_id: str | None = None
    ) -> envelope_pb2.EventEnvelope:
        envelope = new_envelope(
            event_type=event_type,
            aggregate_id=aggregate_id or str(uuid.uuid4()),
            producer=event_type.partition(".")[0],
            payload=payload,
            event_id=event_id,
        )
        await self.deliver(envelope)
        return envelope

    async def deliver(self, envelope: envelope_pb2.EventEnvelope) -> None:
        """Produce an envelope as it is: delivering one twice is a duplicate delivery."""
        await produce(self.producer, consumers.source_topic(envelope.event_type), envelope)

    async def dead_letters(self, topic: str) -> list[tuple[envelope_pb2.EventEnvelope, dict[str, bytes]]]:
        """Everything on a dead-letter topic so far, read from its start up to its current end."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            await consumer.topics()
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            found: list[tuple[envelope_pb2.EventEnvelope, dict[str, bytes]]] = []

            async def behind() -> bool:
                return any([await consumer.position(p) < ends[p] for p in partitions])

            while await behind():
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    found.extend(
                        (envelope_pb2.EventEnvelope.FromString(r.value), dict(r.headers or ()))
                        for r in records
                    )
            return found
        finally:
            await consumer.stop()

    # -- the database

    async def execute(self, sql: str, **params: object) -> list:
        return await execute(self.app.runtime.sessions, sql, **params)

    async def notification(self, event_id: str) -> dict[str, Any] | None:
        rows = await self.execute("SELECT * FROM notifications WHERE event_id = :e", e=event_id)
        return dict(rows[0]._mapping) if rows else None

    async def wait_notification(self, event_id: str, status: str, *, timeout: float = 30.0) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            row = await self.notification(event_id)
            return row if row is not None and row["status"] == status else None

        return await eventually(reached, timeout=timeout, what=f"notification of {event_id} to be {status}")

    async def wait_delivery(self, event_id: str, status: str, *, timeout: float = 30.0) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            rows = await self.execute("SELECT * FROM webhook_deliveries WHERE event_id = :e", e=event_id)
            return dict(rows[0]._mapping) if rows and rows[0].status == status else None

        return await eventually(reached, timeout=timeout, what=f"delivery of {event_id} to be {status}")

    # -- the mailbox

    def mail_to(self, address: str) -> list[Any]:
        return [m for m in self.mailbox.messages() if m["To"] == address]

    async def wait_mail(self, address: str, count: int = 1, *, timeout: float = 30.0) -> list[Any]:
        async def arrived() -> list[Any] | None:
            found = self.mail_to(address)
            return found if len(found) >= count else None

        return await eventually(arrived, timeout=timeout, what=f"{count} e-mail(s) to {address}")


@pytest.fixture(scope="session")
async def notification_broker(data_dir: Path) -> AsyncIterator[EmbeddedBroker]:
    async with own_broker(data_dir / "notification-it-broker") as broker:
        yield broker


@pytest.fixture(scope="session")
def notification_mailbox(data_dir: Path) -> Iterator[Mailbox]:
    mailbox = Mailbox(data_dir / "notification-it-mail").start()
    try:
        yield mailbox
    finally:
        mailbox.stop()


@pytest.fixture(scope="session")
async def webhook_receiver() -> AsyncIterator[Receiver]:
    async with Receiver().running() as receiver:
        yield receiver


@pytest.fixture(scope="session")
async def notification_harness(
    infra,
    data_dir: Path,
    account: AccountHarness,
    notification_broker: EmbeddedBroker,
    notification_mailbox: Mailbox,
    webhook_receiver: Receiver,
) -> AsyncIterator[NotificationHarness]:
    bootstrap = notification_broker.bootstrap_servers
    settings = NotificationSettings(
        **await service_settings(infra, data_dir, "notification", bootstrap_servers=bootstrap),
        account_addr=f"127.0.0.1:{account.port}",
        smtp_host=notification_mailbox.host,
        smtp_port=notification_mailbox.port,
        smtp_timeout=2.0,
        webhook_timeout=0.5,
        delivery_poll_interval=0.1,
        webhook_secret_key_file=data_dir / "notification-it-webhook.key",
    )

    def build_with_quick_backoff() -> NotificationApp:
        app = build(settings)
        app.service.mail_backoff = MAIL_BACKOFF
        app.service.webhook_backoff = WEBHOOK_BACKOFF
        return app

    service = InProcess(build_with_quick_backoff, notification_pb2_grpc.NotificationServiceStub)
    producer = create_producer(bootstrap, idempotent=False, client_id="notification-it")
    await producer.start()
    try:
        async with service.running():
            yield NotificationHarness(
                service.app,
                service.stub,
                settings,
                account,
                notification_mailbox,
                webhook_receiver,
                bootstrap,
                producer,
            )
    finally:
        await producer.stop()


@pytest.fixture
async def notifications(notification_harness: NotificationHarness) -> NotificationHarness:
    """Each test starts with no notifications, webhooks or events, a running mailbox, a receiver that
    answers 200, and private webhook URLs allowed (as in development and tests)."""
    harness = notification_harness
    await harness.execute("TRUNCATE notifications, webhook_deliveries, webhooks, outbox, inbox CASCADE")
    harness.service.subscribed.forget()  # the webhooks are gone: read again
    harness.mailbox.start()
    harness.receiver.reset()
    harness.service.mail_backoff = MAIL_BACKOFF
    harness.service.webhook_backoff = WEBHOOK_BACKOFF
    policy = UrlPolicy(allow_private=True)
    harness.service.url_policy = policy
    harness.service.webhook_sender.policy = policy
    return harness


# -- event payloads -------------------------------------------------------------------------------


def money(amount_minor: int, currency: str = "EUR") -> money_pb2.Money:
    return money_pb2.Money(amount_minor=amount_minor, currency=currency)


def item(
    name: str, quantity: int, unit_minor: int, *, currency: str = "EUR", sku: str = ""
) -> order_pb2.OrderItem:
    return order_pb2.OrderItem(
        product_id=str(uuid.uuid4()),
        sku=sku or f"SKU-{name[:3].upper()}",
        name=name,
        unit_price=money(unit_minor, currency),
        quantity=quantity,
        line_total=money(unit_minor * quantity, currency),
    )


def address() -> order_pb2.ShippingAddress:
    return order_pb2.ShippingAddress(
        name="Ada Lovelace", line1="12 Analytical Row", city="London", postal_code="N1 9GU", country="GB"
    )


def order_confirmed(
    account_id: str, items: list[order_pb2.OrderItem], **overrides: Any
) -> order_events_pb2.OrderConfirmed:
    total = sum(i.line_total.amount_minor for i in items)
    values: dict[str, Any] = {
        "order_id": str(uuid.uuid4()),
        "account_id": account_id,
        "items": items,
        "total": money(total, items[0].unit_price.currency if items else "EUR"),
        "payment_id": str(uuid.uuid4()),
        "shipping_address": address(),
    }
    values.update(overrides)
    return order_events_pb2.OrderConfirmed(**{k: v for k, v in values.items() if v is not None})


@contextlib.contextmanager
def mailbox_down(mailbox: Mailbox) -> Iterator[None]:
    mailbox.stop()
    try:
        yield
    finally:
        mailbox.start()


async def rpc_error(call: Any) -> tuple[grpc.StatusCode, list[str]]:
    """The status code and the violated fields of a call that must fail."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        details = parse_rpc_error(error)
        return error.code(), [v.field for v in details.violations]
    raise AssertionError("the call succeeded")
