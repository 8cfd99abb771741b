"""One status change per transition: the e-mails and the webhook deliveries of `order.created`,
`order.confirmed`, ... derived from it, and the older pair (a status change without details and
its fact on its own) still handled, each transition mailed once."""

from __future__ import annotations

import uuid

import orjson

from ecommerce.events.v1 import order_events_pb2
from ecommerce.notification.v1 import notification_pb2
from ecommerce.order.v1 import order_pb2
from notification.facts import derived_event_id
from tests.helpers import eventually
from tests.integration.notification.conftest import NotificationHarness, address, item, money, order_confirmed

S = order_pb2


def change(
    account_id: str,
    new_status: int,
    *,
    old_status: int = S.ORDER_STATUS_AWAITING_PAYMENT,
    details: bool = True,
) -> order_events_pb2.OrderStatusChanged:
    """A status change as the order service publishes it (`details=False`: as an older one did)."""
    payload = order_events_pb2.OrderStatusChanged(
        order_id=str(uuid.uuid4()), account_id=account_id, old_status=old_status, new_status=new_status
    )
    if details:
        items = [item("Desk Lamp", 2, 4_500)]
        payload.details.CopyFrom(
            order_events_pb2.OrderDetails(
                items=items,
                total=money(9_000),
                subtotal=money(9_000),
                discount=money(0),
                shipping=money(0),
                tax=money(0),
                shipping_address=address(),
                payment_id="pay-1",
            )
        )
    return payload


async def handled(harness: NotificationHarness, event_id: str) -> None:
    await eventually(
        lambda: harness.execute("SELECT 1 FROM inbox WHERE event_id = :e", e=event_id),
        what=f"{event_id} handled",
    )


async def notifications_of(harness: NotificationHarness, order_id: str) -> list[tuple[str, str]]:
    rows = await harness.execute(
        "SELECT event_type, template FROM notifications WHERE variables->>'order_id' = :o", o=order_id
    )
    return [tuple(row) for row in rows]


async def test_a_confirmed_status_change_mails_the_confirmation_once(notifications: NotificationHarness):
    shopper = await notifications.customer(name="Grace Hopper")
    payload = change(shopper.account_id, S.ORDER_STATUS_CONFIRMED)

    envelope = await notifications.publish("order.status_changed", payload, aggregate_id=payload.order_id)
    await notifications.deliver(envelope)  # redelivered

    [message] = await notifications.wait_mail(shopper.email)
    number = payload.order_id.split("-")[0].upper()
    assert message["Subject"] == f"Your order {number} is confirmed"
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "2 x Desk Lamp (SKU-DES) at 45.00 EUR = 90.00 EUR" in body
    assert "12 Analytical Row" in body
    row = await notifications.wait_notification(
        derived_event_id(envelope.event_id, "order.confirmed"), "SENT"
    )
    assert (row["event_type"], row["template"]) == ("order.confirmed", "order_confirmed")
    assert await notifications_of(notifications, payload.order_id) == [("order.confirmed", "order_confirmed")]


async def test_a_cancelled_status_change_says_why_and_that_a_refund_follows(
    notifications: NotificationHarness,
):
    shopper = await notifications.customer()
    payload = change(shopper.account_id, S.ORDER_STATUS_CANCELLED, old_status=S.ORDER_STATUS_CONFIRMED)
    payload.cancellation_reason = S.CANCELLATION_REASON_ADMIN_CANCELLED
    payload.details.refund_expected = True

    await notifications.publish("order.status_changed", payload, aggregate_id=payload.order_id)

    [message] = await notifications.wait_mail(shopper.email)
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "our team cancelled it" in body
    assert "refund" in body.lower()


async def test_steps_between_milestones_and_the_older_pair_mail_once_per_transition(
    notifications: NotificationHarness,
):
    shopper = await notifications.customer()
    step = change(shopper.account_id, S.ORDER_STATUS_AWAITING_PAYMENT, old_status=S.ORDER_STATUS_PENDING)
    older = change(shopper.account_id, S.ORDER_STATUS_CONFIRMED, details=False)
    fact = order_confirmed(shopper.account_id, [item("Desk Lamp", 1, 4_500)], order_id=older.order_id)

    stepped = await notifications.publish("order.status_changed", step, aggregate_id=step.order_id)
    plain = await notifications.publish("order.status_changed", older, aggregate_id=older.order_id)
    confirmed = await notifications.publish("order.confirmed", fact, aggregate_id=older.order_id)

    await notifications.wait_notification(confirmed.event_id, "SENT")
    for envelope in (stepped, plain):
        await handled(notifications, envelope.event_id)
    assert await notifications_of(notifications, step.order_id) == []
    assert await notifications_of(notifications, older.order_id) == [("order.confirmed", "order_confirmed")]
    assert len(notifications.mail_to(shopper.email)) == 1


async def test_a_webhook_of_order_confirmed_receives_the_fact_derived_from_the_status_change(
    notifications: NotificationHarness,
):
    admin = notifications.admin()
    await notifications.stub.CreateWebhook(
        notification_pb2.CreateWebhookRequest(
            url=notifications.receiver.url("/erp"), events=["order.confirmed"]
        ),
        metadata=admin,
    )
    await notifications.stub.CreateWebhook(
        notification_pb2.CreateWebhookRequest(
            url=notifications.receiver.url("/all"), events=["order.status_changed", "order.created"]
        ),
        metadata=admin,
    )
    payload = change(str(uuid.uuid4()), S.ORDER_STATUS_CONFIRMED)

    envelope = await notifications.publish("order.status_changed", payload, aggregate_id=payload.order_id)

    fact_id = derived_event_id(envelope.event_id, "order.confirmed")
    await notifications.wait_delivery(fact_id, "DELIVERED")
    await notifications.wait_delivery(envelope.event_id, "DELIVERED")
    [request] = notifications.receiver.received(fact_id)
    body = orjson.loads(request.body)
    assert (body["id"], body["type"], body["aggregate_id"]) == (fact_id, "order.confirmed", payload.order_id)
    assert request.headers["x-ecommerce-event"] == "order.confirmed"
    data = body["data"]
    assert (data["order_id"], data["payment_id"], data["total"]["amount_minor"]) == (
        payload.order_id,
        "pay-1",
        "9000",
    )
    assert [(i["name"], i["quantity"]) for i in data["items"]] == [("Desk Lamp", 2)]
    assert data["shipping_address"]["city"] == "London"
    # The other webhook got the status change itself (with its details), and no order.created.
    [change_request] = notifications.receiver.received(envelope.event_id)
    assert orjson.loads(change_request.body)["data"]["details"]["payment_id"] == "pay-1"
    deliveries = await notifications.execute(
        "SELECT event_type FROM webhook_deliveries WHERE event_id IN (:a, :b) ORDER BY event_type",
        a=envelope.event_id,
        b=fact_id,
    )
    assert [row[0] for row in deliveries] == ["order.confirmed", "order.status_changed"]


async def test_a_placing_status_change_reaches_the_webhooks_of_order_created(
    notifications: NotificationHarness,
):
    await notifications.stub.CreateWebhook(
        notification_pb2.CreateWebhookRequest(url=notifications.receiver.url(), events=["order.created"]),
        metadata=notifications.admin(),
    )
    payload = change(str(uuid.uuid4()), S.ORDER_STATUS_PENDING, old_status=S.ORDER_STATUS_UNSPECIFIED)
    payload.details.payment_id = ""

    envelope = await notifications.publish("order.status_changed", payload, aggregate_id=payload.order_id)

    fact_id = derived_event_id(envelope.event_id, "order.created")
    await notifications.wait_delivery(fact_id, "DELIVERED")
    [request] = notifications.receiver.received(fact_id)
    data = orjson.loads(request.body)["data"]
    assert (data["order_id"], data["total"]["amount_minor"]) == (payload.order_id, "9000")
    assert notifications.receiver.received(envelope.event_id) == []
