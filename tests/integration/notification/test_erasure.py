"""account.deleted in the notification service: the account's e-mails keep their rows but lose
their recipient, subject, variables and event copy, a PENDING one is FAILED (nothing more goes
out), and the webhook bodies of its events keep only the event's identity; another account's are
untouched. Handled twice, or under a new event id, the result is the same."""

from __future__ import annotations

import orjson

from ecommerce.events.v1 import account_events_pb2, envelope_pb2
from ecommerce.notification.v1 import notification_pb2
from notification.erasure import ERASED_ERROR
from servicekit.timestamps import now_timestamp
from tests.helpers import eventually
from tests.integration.notification.conftest import (
    Customer,
    NotificationHarness,
    item,
    mailbox_down,
    order_confirmed,
)

STREET = "12 Analytical Row"  # conftest.address()


async def handled(notifications: NotificationHarness, envelope: envelope_pb2.EventEnvelope) -> None:
    await eventually(
        lambda: notifications.execute("SELECT 1 FROM inbox WHERE event_id = :e", e=envelope.event_id),
        what=f"{envelope.event_type} {envelope.event_id} handled",
    )


async def account_deleted(notifications: NotificationHarness, account_id: str) -> envelope_pb2.EventEnvelope:
    envelope = await notifications.publish(
        "account.deleted",
        account_events_pb2.AccountDeleted(account_id=account_id, deleted_at=now_timestamp()),
        aggregate_id=account_id,
    )
    await handled(notifications, envelope)
    return envelope


async def confirmed(notifications: NotificationHarness, shopper: Customer) -> envelope_pb2.EventEnvelope:
    payload = order_confirmed(shopper.account_id, [item("Studio Headphones", 1, 12_950)])
    return await notifications.publish("order.confirmed", payload, aggregate_id=payload.order_id)


async def copies(notifications: NotificationHarness, shopper: Customer) -> int:
    """The shopper's rows in the notification tables whose text holds its e-mail or street."""
    [(found,)] = await notifications.execute(
        "SELECT (SELECT count(*) FROM notifications n WHERE n.account_id = :a AND concat_ws(' ',"
        "   n.recipient, n.subject, n.variables::text, encode(n.envelope, 'escape')) ~ :pattern)"
        " + (SELECT count(*) FROM webhook_deliveries d WHERE d.event_id IN"
        "   (SELECT event_id FROM notifications WHERE account_id = :a)"
        "   AND encode(d.body, 'escape') ~ :pattern)",
        a=shopper.account_id,
        pattern=f"({shopper.email.replace('.', '[.]')}|{STREET})",
    )
    return found


async def rows_of(notifications: NotificationHarness, shopper: Customer) -> list:
    return await notifications.execute(
        "SELECT id, status, recipient, subject, variables, envelope, last_error FROM notifications"
        " WHERE account_id = :a ORDER BY id",
        a=shopper.account_id,
    )


async def test_the_accounts_mail_and_webhook_bodies_are_erased(notifications: NotificationHarness):
    await notifications.stub.CreateWebhook(
        notification_pb2.CreateWebhookRequest(url=notifications.receiver.url(), events=["order.confirmed"]),
        metadata=notifications.admin(),
    )
    shopper = await notifications.customer()
    other = await notifications.customer(name="Grace Hopper")
    sent = await confirmed(notifications, shopper)
    await confirmed(notifications, other)
    await notifications.wait_notification(sent.event_id, "SENT")
    await notifications.wait_delivery(sent.event_id, "DELIVERED")
    with mailbox_down(notifications.mailbox):
        pending = await confirmed(notifications, shopper)
        await notifications.wait_notification(pending.event_id, "PENDING")
        assert await copies(notifications, shopper) > 0

        await account_deleted(notifications, shopper.account_id)

        assert (await notifications.notification(pending.event_id) or {})["status"] == "FAILED"
    assert await copies(notifications, shopper) == 0
    assert await copies(notifications, other) > 0
    rows = await rows_of(notifications, shopper)
    assert {(r.recipient, r.subject, orjson.dumps(r.variables), bytes(r.envelope)) for r in rows} == {
        ("", "", b"{}", b"")
    }
    assert [(r.status, r.last_error) for r in rows if r.status == "FAILED"] == [("FAILED", ERASED_ERROR)]
    [(body,)] = await notifications.execute(
        "SELECT body FROM webhook_deliveries WHERE event_id = :e", e=sent.event_id
    )
    erased = orjson.loads(body)
    assert (erased["id"], erased["type"], erased["data"]) == (
        sent.event_id,
        "order.confirmed",
        {"account_id": shopper.account_id, "erased": True},
    )


async def test_handled_twice_the_erasure_has_the_same_result(notifications: NotificationHarness):
    await notifications.stub.CreateWebhook(
        notification_pb2.CreateWebhookRequest(url=notifications.receiver.url(), events=["order.confirmed"]),
        metadata=notifications.admin(),
    )
    shopper = await notifications.customer()
    sent = await confirmed(notifications, shopper)
    await notifications.wait_notification(sent.event_id, "SENT")
    await notifications.wait_delivery(sent.event_id, "DELIVERED")
    first = await account_deleted(notifications, shopper.account_id)
    erased = (
        await rows_of(notifications, shopper),
        await notifications.execute("SELECT body FROM webhook_deliveries"),
    )

    await notifications.deliver(first)  # a redelivery: the inbox has it
    await account_deleted(notifications, shopper.account_id)  # published again, under a new id

    again = (
        await rows_of(notifications, shopper),
        await notifications.execute("SELECT body FROM webhook_deliveries"),
    )
    assert again == erased
