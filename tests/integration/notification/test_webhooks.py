"""Signed webhooks: created by an ADMIN with a secret shown once, delivered signed to a real
receiver, retried on 5xx and timeouts only, stopped by a delete, and never aimed inside the network."""

from __future__ import annotations

import uuid

import grpc
import orjson

from ecommerce.events.v1 import order_events_pb2
from ecommerce.notification.v1 import notification_pb2
from ecommerce.order.v1 import order_pb2
from notification.webhooks import UrlPolicy, verify_signature
from tests.helpers import eventually
from tests.integration.notification.conftest import NotificationHarness, item, money, rpc_error

ORDER_EVENTS = ["order.status_changed", "order.confirmed"]


def create(
    url: str, events: list[str] | None = None, description: str = ""
) -> notification_pb2.CreateWebhookRequest:
    return notification_pb2.CreateWebhookRequest(
        url=url, events=ORDER_EVENTS if events is None else events, description=description
    )


async def status_changed(harness: NotificationHarness, *, event_id: str | None = None):  # type: ignore[no-untyped-def]
    order_id = str(uuid.uuid4())
    payload = order_events_pb2.OrderStatusChanged(
        order_id=order_id,
        account_id=str(uuid.uuid4()),
        old_status=order_pb2.ORDER_STATUS_AWAITING_PAYMENT,
        new_status=order_pb2.ORDER_STATUS_CONFIRMED,
        reason="payment succeeded",
    )
    return await harness.publish("order.status_changed", payload, aggregate_id=order_id, event_id=event_id)


async def webhook_count(harness: NotificationHarness) -> int:
    return (await harness.execute("SELECT count(*) FROM webhooks"))[0][0]


async def test_creating_a_webhook_returns_its_secret_once_and_stores_it_encrypted(
    notifications: NotificationHarness,
):
    admin = notifications.admin()

    created = await notifications.stub.CreateWebhook(
        create(notifications.receiver.url(), description="ERP"), metadata=admin
    )

    assert created.secret.startswith("whsec_")
    assert len(created.secret) > 40
    hook = created.webhook
    assert (hook.url, list(hook.events), hook.description, hook.active) == (
        notifications.receiver.url(),
        ORDER_EVENTS,
        "ERP",
        True,
    )
    listed = await notifications.stub.ListWebhooks(notification_pb2.ListWebhooksRequest(), metadata=admin)
    assert [w.id for w in listed.webhooks] == [hook.id]
    assert created.secret not in str(listed)
    [(stored,)] = await notifications.execute("SELECT secret_ciphertext FROM webhooks")
    assert created.secret not in stored


async def test_a_delivery_is_signed_with_the_secret_and_a_tampered_body_fails_verification(
    notifications: NotificationHarness,
):
    created = await notifications.stub.CreateWebhook(
        create(notifications.receiver.url()), metadata=notifications.admin()
    )

    envelope = await status_changed(notifications)

    delivery = await notifications.wait_delivery(envelope.event_id, "DELIVERED")
    [request] = notifications.receiver.received(envelope.event_id)
    signature = request.headers["x-ecommerce-signature"]
    assert signature.startswith("t=")
    assert verify_signature(created.secret, signature, request.body)
    assert not verify_signature(created.secret, signature, request.body.replace(b"CONFIRMED", b"CANCELLED"))
    assert not verify_signature(created.secret, signature, request.body + b" ")
    assert not verify_signature("whsec_another", signature, request.body)
    body = orjson.loads(request.body)
    assert (body["id"], body["type"], body["aggregate_id"]) == (
        envelope.event_id,
        "order.status_changed",
        envelope.aggregate_id,
    )
    assert body["data"]["new_status"] == "ORDER_STATUS_CONFIRMED"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-ecommerce-event"] == "order.status_changed"
    assert request.headers["x-ecommerce-delivery"] == str(delivery["id"])
    assert (delivery["attempts"], delivery["response_status"]) == (1, 200)


async def test_an_old_signature_is_refused_by_the_receiver_check(notifications: NotificationHarness):
    created = await notifications.stub.CreateWebhook(
        create(notifications.receiver.url()), metadata=notifications.admin()
    )
    envelope = await status_changed(notifications)
    await notifications.wait_delivery(envelope.event_id, "DELIVERED")
    [request] = notifications.receiver.received(envelope.event_id)
    signed_at = int(request.headers["x-ecommerce-signature"].split(",")[0][2:])

    assert not verify_signature(
        created.secret, request.headers["x-ecommerce-signature"], request.body, now=signed_at + 301
    )


async def test_a_server_error_is_retried_until_the_endpoint_answers(notifications: NotificationHarness):
    await notifications.stub.CreateWebhook(
        create(notifications.receiver.url()), metadata=notifications.admin()
    )
    notifications.receiver.answer(500, 503)

    envelope = await status_changed(notifications)

    delivery = await notifications.wait_delivery(envelope.event_id, "DELIVERED")
    assert (delivery["attempts"], delivery["response_status"], delivery["last_error"]) == (3, 200, "")
    requests = notifications.receiver.received(envelope.event_id)
    assert len(requests) == 3
    assert len({r.body for r in requests}) == 1  # every retry sends the same body


async def test_a_client_error_is_not_retried(notifications: NotificationHarness):
    created = await notifications.stub.CreateWebhook(
        create(notifications.receiver.url()), metadata=notifications.admin()
    )
    notifications.receiver.answer(400)

    envelope = await status_changed(notifications)

    delivery = await notifications.wait_delivery(envelope.event_id, "FAILED")
    assert (delivery["attempts"], delivery["response_status"], delivery["last_error"]) == (1, 400, "HTTP 400")
    # A later event still goes out (and is the only other request): the 400 was never retried.
    later = await status_changed(notifications)
    await notifications.wait_delivery(later.event_id, "DELIVERED")
    assert len(notifications.receiver.received(envelope.event_id)) == 1
    log = await notifications.stub.ListWebhookDeliveries(
        notification_pb2.ListWebhookDeliveriesRequest(webhook_id=created.webhook.id),
        metadata=notifications.admin(),
    )
    assert [(d.event_id, d.status) for d in log.deliveries] == [
        (later.event_id, notification_pb2.WEBHOOK_DELIVERY_STATUS_DELIVERED),
        (envelope.event_id, notification_pb2.WEBHOOK_DELIVERY_STATUS_FAILED),
    ]
    assert log.deliveries[1].response_status == 400
    assert log.total_count == 2


async def test_a_timeout_is_retried_and_past_the_budget_the_delivery_fails(
    notifications: NotificationHarness,
):
    await notifications.stub.CreateWebhook(
        create(notifications.receiver.url()), metadata=notifications.admin()
    )
    notifications.receiver.delay = 2.0  # longer than the 0.5 s webhook timeout

    envelope = await status_changed(notifications)

    delivery = await notifications.wait_delivery(envelope.event_id, "FAILED", timeout=30)
    budget = notifications.service.webhook_backoff.max_attempts
    assert (delivery["attempts"], delivery["response_status"], delivery["last_error"]) == (
        budget,
        0,
        "timeout",
    )
    assert len(notifications.receiver.received(envelope.event_id)) == budget


async def test_events_a_webhook_did_not_subscribe_to_are_not_sent(notifications: NotificationHarness):
    await notifications.stub.CreateWebhook(
        create(notifications.receiver.url(), events=["order.confirmed"]), metadata=notifications.admin()
    )
    unsubscribed = await status_changed(notifications)
    subscribed = await notifications.publish(
        "order.confirmed",
        order_events_pb2.OrderConfirmed(
            order_id=unsubscribed.aggregate_id,
            account_id=str(uuid.uuid4()),
            items=[item("Lamp", 1, 100)],
            total=money(100),
        ),
        aggregate_id=unsubscribed.aggregate_id,
    )

    await notifications.wait_delivery(subscribed.event_id, "DELIVERED")
    assert notifications.receiver.received(unsubscribed.event_id) == []
    rows = await notifications.execute(
        "SELECT count(*) FROM webhook_deliveries WHERE event_id = :e", e=unsubscribed.event_id
    )
    assert rows[0][0] == 0


async def test_a_redelivered_event_is_sent_to_a_webhook_once(notifications: NotificationHarness):
    await notifications.stub.CreateWebhook(
        create(notifications.receiver.url()), metadata=notifications.admin()
    )
    envelope = await status_changed(notifications)
    await notifications.wait_delivery(envelope.event_id, "DELIVERED")
    duplicates = notifications.app.consumer.duplicates

    await notifications.deliver(envelope)

    async def dropped() -> bool:
        return notifications.app.consumer.duplicates > duplicates

    await eventually(dropped, what="the redelivery to be dropped")
    later = await status_changed(notifications)
    await notifications.wait_delivery(later.event_id, "DELIVERED")
    assert len(notifications.receiver.received(envelope.event_id)) == 1


async def test_deleting_a_webhook_stops_its_retries_and_keeps_its_log(notifications: NotificationHarness):
    admin = notifications.admin()
    created = await notifications.stub.CreateWebhook(create(notifications.receiver.url()), metadata=admin)
    notifications.receiver.answer(*([500] * 1000))
    notifications.service.webhook_backoff = notifications.service.webhook_backoff.__class__(0.3, 0.3, 1000)
    envelope = await status_changed(notifications)

    async def retried() -> bool:
        return len(notifications.receiver.received(envelope.event_id)) >= 2

    await eventually(retried, what="the delivery to be retried")

    deleted = await notifications.stub.DeleteWebhook(
        notification_pb2.DeleteWebhookRequest(webhook_id=created.webhook.id), metadata=admin
    )
    again = await notifications.stub.DeleteWebhook(
        notification_pb2.DeleteWebhookRequest(webhook_id=created.webhook.id), metadata=admin
    )

    assert not deleted.webhook.active
    assert again.webhook == deleted.webhook  # idempotent
    cancelled = await notifications.wait_delivery(envelope.event_id, "CANCELLED")
    assert (cancelled["next_attempt_at"], cancelled["last_error"]) == (None, "webhook deleted")
    # New events reach no deleted webhook; the log stays readable.
    later = await status_changed(notifications)

    async def consumed() -> bool:
        return bool(await notifications.execute("SELECT 1 FROM inbox WHERE event_id = :e", e=later.event_id))

    await eventually(consumed, what="the later event to be consumed")
    probe = await notifications.stub.CreateWebhook(
        create(notifications.receiver.url("/probe")), metadata=admin
    )
    notifications.receiver.statuses.clear()
    last = await status_changed(notifications)
    await notifications.wait_delivery(last.event_id, "DELIVERED")
    [(attempts, status)] = await notifications.execute(
        "SELECT attempts, status FROM webhook_deliveries WHERE event_id = :e", e=envelope.event_id
    )
    # A CANCELLED delivery is never claimed again: every request it made was an attempt before the delete.
    assert status == "CANCELLED"
    assert len(notifications.receiver.received(envelope.event_id)) == attempts
    assert notifications.receiver.received(later.event_id) == []
    assert (
        await notifications.execute("SELECT id FROM webhook_deliveries WHERE event_id = :e", e=later.event_id)
        == []
    )
    log = await notifications.stub.ListWebhookDeliveries(
        notification_pb2.ListWebhookDeliveriesRequest(webhook_id=created.webhook.id), metadata=admin
    )
    assert [d.status for d in log.deliveries] == [notification_pb2.WEBHOOK_DELIVERY_STATUS_CANCELLED]
    active = await notifications.stub.ListWebhooks(notification_pb2.ListWebhooksRequest(), metadata=admin)
    everything = await notifications.stub.ListWebhooks(
        notification_pb2.ListWebhooksRequest(include_deleted=True), metadata=admin
    )
    assert [w.id for w in active.webhooks] == [probe.webhook.id]
    assert [w.id for w in everything.webhooks] == [probe.webhook.id, created.webhook.id]


async def test_an_address_that_turned_private_is_refused_at_delivery_time(notifications: NotificationHarness):
    # Created while loopback was allowed, as if its name had resolved to a public address then.
    await notifications.stub.CreateWebhook(
        create(notifications.receiver.url()), metadata=notifications.admin()
    )
    notifications.service.webhook_sender.policy = UrlPolicy(allow_private=False)

    envelope = await status_changed(notifications)

    delivery = await notifications.wait_delivery(envelope.event_id, "FAILED")
    assert delivery["last_error"] == "url refused: points to a private, loopback or link-local address"
    assert delivery["attempts"] == 1
    assert notifications.receiver.received(envelope.event_id) == []


async def test_bad_webhook_input_is_refused_and_nothing_is_written(notifications: NotificationHarness):
    admin = notifications.admin()
    good = notifications.receiver.url()
    for request, field in [
        (create(""), "url"),
        (create("ftp://example.com/hook"), "url"),
        (create("javascript:alert(1)"), "url"),
        (create("file:///etc/passwd"), "url"),
        (create("http:///no-host"), "url"),
        (create("http://user:pw@127.0.0.1/hook"), "url"),
        (create("http://127.0.0.1:99999/hook"), "url"),
        (create("http://exa mple.com/hook"), "url"),
        (create("https://example.com/" + "a" * 2030), "url"),
        (create(good, events=[]), "events"),
        (create(good, events=["order.confirmed", "order.exploded"]), "events[1]"),
        (create(good, events=["x" * 100_000]), "events[0]"),
        (create(good, description="d" * 501), "description"),
        (create(good, description="bell\x07"), "description"),
    ]:
        code, fields = await rpc_error(notifications.stub.CreateWebhook(request, metadata=admin))
        assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field]), request.url[:60]
    assert await webhook_count(notifications) == 0


async def test_urls_inside_the_network_are_refused_when_the_setting_is_off(
    notifications: NotificationHarness,
):
    notifications.service.url_policy = UrlPolicy(allow_private=False)
    admin = notifications.admin()

    for url in [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
        "http://224.0.0.1/hook",
        "http://240.0.0.1/hook",
    ]:
        code, fields = await rpc_error(notifications.stub.CreateWebhook(create(url), metadata=admin))
        assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["url"]), url
    assert await webhook_count(notifications) == 0


async def test_ipv6_transition_forms_of_internal_addresses_are_refused(notifications: NotificationHarness):
    notifications.service.url_policy = UrlPolicy(allow_private=False)
    admin = notifications.admin()

    for url in ["http://[2002:7f00:1::1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[::127.0.0.1]/hook"]:
        code, fields = await rpc_error(notifications.stub.CreateWebhook(create(url), metadata=admin))
        assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["url"]), url
    assert await webhook_count(notifications) == 0


async def test_a_public_address_is_accepted_when_private_ones_are_refused(notifications: NotificationHarness):
    notifications.service.url_policy = UrlPolicy(allow_private=False)

    created = await notifications.stub.CreateWebhook(
        create("https://93.184.215.14:8443/hooks/orders?tenant=7"), metadata=notifications.admin()
    )

    assert created.webhook.url == "https://93.184.215.14:8443/hooks/orders?tenant=7"


async def test_webhooks_are_for_administrators_only(notifications: NotificationHarness):
    customer = await notifications.customer()
    admin = notifications.admin()
    created = await notifications.stub.CreateWebhook(create(notifications.receiver.url()), metadata=admin)
    hook_id = created.webhook.id

    calls = [
        lambda md: notifications.stub.CreateWebhook(create(notifications.receiver.url()), metadata=md),
        lambda md: notifications.stub.DeleteWebhook(
            notification_pb2.DeleteWebhookRequest(webhook_id=hook_id), metadata=md
        ),
        lambda md: notifications.stub.ListWebhooks(notification_pb2.ListWebhooksRequest(), metadata=md),
        lambda md: notifications.stub.ListWebhookDeliveries(
            notification_pb2.ListWebhookDeliveriesRequest(webhook_id=hook_id), metadata=md
        ),
    ]
    for call in calls:
        assert (await rpc_error(call(customer.metadata)))[0] == grpc.StatusCode.PERMISSION_DENIED
        assert (await rpc_error(call([])))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert await webhook_count(notifications) == 1
    [(deleted_at,)] = await notifications.execute("SELECT deleted_at FROM webhooks")
    assert deleted_at is None


async def test_unknown_and_malformed_webhook_ids(notifications: NotificationHarness):
    admin = notifications.admin()
    for webhook_id, expected in [
        (str(uuid.uuid4()), grpc.StatusCode.NOT_FOUND),
        ("not-an-id", grpc.StatusCode.INVALID_ARGUMENT),
        ("", grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        code, _ = await rpc_error(
            notifications.stub.DeleteWebhook(
                notification_pb2.DeleteWebhookRequest(webhook_id=webhook_id), metadata=admin
            )
        )
        assert code == expected
        code, _ = await rpc_error(
            notifications.stub.ListWebhookDeliveries(
                notification_pb2.ListWebhookDeliveriesRequest(webhook_id=webhook_id), metadata=admin
            )
        )
        assert code == expected
    created = await notifications.stub.CreateWebhook(create(notifications.receiver.url()), metadata=admin)
    for page_size in (-1, 101):
        code, fields = await rpc_error(
            notifications.stub.ListWebhookDeliveries(
                notification_pb2.ListWebhookDeliveriesRequest(
                    webhook_id=created.webhook.id, page_size=page_size
                ),
                metadata=admin,
            )
        )
        assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_size"])
