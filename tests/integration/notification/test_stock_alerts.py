"""Low-stock alerts: `catalog.stock_low` e-mails every administrator once per crossing, however
often the event is delivered, and no customer; while the account service cannot list the
administrators the event waits and is retried, never dropped or dead-lettered."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest

from ecommerce.account.v1 import account_pb2
from ecommerce.events.v1 import catalog_events_pb2
from notification.peers import AccountDirectory
from servicekit.kafka import dead_letter_topic
from servicekit.topics import CATALOG_EVENTS, CatalogEvent
from tests.helpers import eventually
from tests.integration.notification.conftest import Customer, NotificationHarness
from tests.integration.notification.test_email import html_part, text_part


async def promoted(notifications: NotificationHarness, name: str) -> Customer:
    """A registered account made ADMIN by an administrator."""
    account = await notifications.customer(name=name)
    await notifications.account.stub.SetRole(
        account_pb2.SetRoleRequest(account_id=account.account_id, role=account_pb2.ROLE_ADMIN),
        metadata=notifications.admin(),
    )
    return account


def stock_low(product_id: str, *, stock: int, name: str = "Linen Shirt") -> catalog_events_pb2.StockLow:
    return catalog_events_pb2.StockLow(
        product_id=product_id,
        variant_id=str(uuid.uuid4()),
        sku="SHIRT-RED-M",
        name=name,
        variant_name="Red / M",
        stock=stock,
        low_stock_threshold=3,
    )


async def rows_of(notifications: NotificationHarness, event_id: str) -> list[str]:
    rows = await notifications.execute(
        "SELECT account_id FROM notifications WHERE event_id = :e AND template = 'stock_low'", e=event_id
    )
    return [str(r.account_id) for r in rows]


async def test_every_admin_gets_one_email_per_crossing_and_a_customer_none(
    notifications: NotificationHarness,
):
    ada, grace = await promoted(notifications, "Ada"), await promoted(notifications, "Grace")
    shopper = await notifications.customer(name="Shopper")
    product_id = str(uuid.uuid4())

    first = await notifications.publish(
        CatalogEvent.STOCK_LOW,
        stock_low(product_id, stock=2, name="Linen <b>Shirt</b>"),
        aggregate_id=product_id,
    )

    [to_ada] = await notifications.wait_mail(ada.email)
    [to_grace] = await notifications.wait_mail(grace.email)
    assert to_ada["Subject"] == "Low stock: Linen <b>Shirt</b> (Red / M), SKU SHIRT-RED-M, 2 left"
    body = text_part(to_grace)
    assert "Hello Grace," in body
    assert "Product:   Linen <b>Shirt</b>" in body
    assert "SKU:       SHIRT-RED-M" in body
    assert "In stock:  2" in body
    assert "Threshold: 3" in body
    assert "Linen &lt;b&gt;Shirt&lt;/b&gt;" in html_part(to_ada)
    duplicates_before = notifications.app.consumer.duplicates

    await notifications.deliver(first)
    await notifications.deliver(first)

    async def both_dropped() -> bool:
        return notifications.app.consumer.duplicates >= duplicates_before + 2

    await eventually(both_dropped, what="the two redeliveries to be dropped")
    # The next crossing on the same partition: one more e-mail each, and nothing for the redeliveries.
    await notifications.publish(
        CatalogEvent.STOCK_LOW, stock_low(product_id, stock=0), aggregate_id=product_id
    )
    await notifications.wait_mail(ada.email, count=2)
    await notifications.wait_mail(grace.email, count=2)
    assert len(notifications.mail_to(ada.email)) == len(notifications.mail_to(grace.email)) == 2
    assert notifications.mail_to(shopper.email) == []
    recorded = await rows_of(notifications, first.event_id)
    assert sorted(a for a in recorded if a in (ada.account_id, grace.account_id)) == sorted(
        [ada.account_id, grace.account_id]
    )
    assert len(recorded) == len(set(recorded))
    assert shopper.account_id not in recorded


@contextmanager
def account_service_unreachable(notifications: NotificationHarness) -> Iterator[None]:
    """The consumer asks an address where nothing listens, until the block ends."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    working = notifications.service.directory
    notifications.service.directory = AccountDirectory(
        channel, service_token=os.environ["INTERNAL_SERVICE_TOKEN"], timeout=0.5
    )
    try:
        yield
    finally:
        notifications.service.directory = working


async def test_while_the_admins_cannot_be_listed_the_alert_is_retried_not_dead_lettered(
    notifications: NotificationHarness, caplog: pytest.LogCaptureFixture
):
    ada = await promoted(notifications, "Ada")
    product_id = str(uuid.uuid4())
    caplog.set_level(logging.WARNING, logger="servicekit.inbox")
    retries_needed = notifications.app.consumer.max_attempts + 1

    with account_service_unreachable(notifications):
        envelope = await notifications.publish(
            CatalogEvent.STOCK_LOW, stock_low(product_id, stock=1), aggregate_id=product_id
        )

        async def retried_past_the_attempts() -> bool:
            retries = [
                r
                for r in caplog.records
                if envelope.event_id in r.getMessage()
                and "dependency unavailable, retrying" in r.getMessage()
            ]
            return len(retries) >= retries_needed

        await eventually(retried_past_the_attempts, what="the alert to be retried past its attempts")
        assert await rows_of(notifications, envelope.event_id) == []

    [message] = await notifications.wait_mail(ada.email)
    assert "SKU:       SHIRT-RED-M" in text_part(message)
    dead = await notifications.dead_letters(dead_letter_topic(CATALOG_EVENTS))
    assert envelope.event_id not in [e.event_id for e, _ in dead]
