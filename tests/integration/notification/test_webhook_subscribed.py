"""An event no webhook subscribes to costs no INSERT ... SELECT: the consumer knows the subscribed
event types in memory, kept current by the webhooks' creation and deletion."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from ecommerce.events.v1 import order_events_pb2
from ecommerce.notification.v1 import notification_pb2
from ecommerce.order.v1 import order_pb2
from tests.helpers import eventually, sql_sent
from tests.integration.notification.conftest import NotificationHarness

STATUS_CHANGED = "order.status_changed"


@contextlib.contextmanager
def delivery_inserts(harness: NotificationHarness) -> Iterator[list[str]]:
    """Every INSERT into webhook_deliveries the service runs meanwhile."""
    inserts: list[str] = []
    with sql_sent(harness.app.runtime.engine) as sent:
        yield inserts
    inserts += [sql for sql, _ in sent if sql.lstrip().upper().startswith("INSERT INTO WEBHOOK_DELIVERIES")]


async def step(harness: NotificationHarness):  # type: ignore[no-untyped-def]
    """A transition with no fact of its own: only a webhook would want it."""
    order_id = str(uuid.uuid4())
    payload = order_events_pb2.OrderStatusChanged(
        order_id=order_id,
        account_id=str(uuid.uuid4()),
        old_status=order_pb2.ORDER_STATUS_PENDING,
        new_status=order_pb2.ORDER_STATUS_AWAITING_PAYMENT,
    )
    envelope = await harness.publish(STATUS_CHANGED, payload, aggregate_id=order_id)
    await eventually(
        lambda: harness.execute("SELECT 1 FROM inbox WHERE event_id = :e", e=envelope.event_id),
        what=f"{envelope.event_id} handled",
    )
    return envelope


async def known_unsubscribed(harness: NotificationHarness) -> None:
    async def unsubscribed() -> bool:
        return not harness.service.subscribed.wants(STATUS_CHANGED)

    await eventually(unsubscribed, what="the subscribed event types read, without order.status_changed")


async def test_an_event_without_subscribers_runs_no_delivery_insert_until_a_webhook_wants_it(
    notifications: NotificationHarness,
):
    admin = notifications.admin()
    await known_unsubscribed(notifications)

    with delivery_inserts(notifications) as inserts:
        await step(notifications)
    assert inserts == []

    created = await notifications.stub.CreateWebhook(
        notification_pb2.CreateWebhookRequest(url=notifications.receiver.url(), events=[STATUS_CHANGED]),
        metadata=admin,
    )
    with delivery_inserts(notifications) as inserts:
        envelope = await step(notifications)
    assert len(inserts) == 1
    await notifications.wait_delivery(envelope.event_id, "DELIVERED")

    await notifications.stub.DeleteWebhook(
        notification_pb2.DeleteWebhookRequest(webhook_id=created.webhook.id), metadata=admin
    )
    await known_unsubscribed(notifications)
    with delivery_inserts(notifications) as inserts:
        await step(notifications)
    assert inserts == []


async def test_a_change_heard_from_another_process_is_read_again(notifications: NotificationHarness):
    await known_unsubscribed(notifications)
    reads = notifications.service.subscribed.reads

    # As another notification process creates it: only the NOTIFY reaches this one.
    await notifications.execute(
        "INSERT INTO webhooks (id, url, events, description, secret_ciphertext, created_by) "
        "VALUES (gen_random_uuid(), 'http://127.0.0.1:9/h', ARRAY['order.status_changed'], '', 'x', 'y')"
    )
    await notifications.execute("SELECT pg_notify('notification_webhooks', '')")

    async def heard() -> bool:
        subscribed = notifications.service.subscribed
        return subscribed.reads > reads and subscribed.wants(STATUS_CHANGED)

    await eventually(heard, what="the new subscription heard and read")
