"""E-mails from events: one per event whatever the redeliveries, retried while the SMTP server is
away, FAILED and dead-lettered past the budget, and never crashed by a gap in an event."""

from __future__ import annotations

import logging
import uuid

from ecommerce.events.v1 import account_events_pb2, order_events_pb2, payment_events_pb2
from ecommerce.order.v1 import order_pb2
from notification.delivery import Backoff
from tests.helpers import eventually
from tests.integration.notification.conftest import (
    NotificationHarness,
    item,
    mailbox_down,
    money,
    order_confirmed,
)


def text_part(message) -> str:  # type: ignore[no-untyped-def]
    return message.get_body(preferencelist=("plain",)).get_content()


def html_part(message) -> str:  # type: ignore[no-untyped-def]
    return message.get_body(preferencelist=("html",)).get_content()


async def test_order_confirmed_sends_one_email_with_subject_recipient_lines_and_total(
    notifications: NotificationHarness,
):
    shopper = await notifications.customer(name="Grace Hopper")
    payload = order_confirmed(
        shopper.account_id,
        [item("Studio Headphones", 2, 12_950), item("USB-C Cable", 1, 999, sku="CAB-1")],
    )

    envelope = await notifications.publish("order.confirmed", payload, aggregate_id=payload.order_id)

    [message] = await notifications.wait_mail(shopper.email)
    number = payload.order_id.split("-")[0].upper()
    assert message["Subject"] == f"Your order {number} is confirmed"
    assert message["To"] == shopper.email
    body = text_part(message)
    assert "Hello Grace Hopper," in body
    assert "2 x Studio Headphones (SKU-STU) at 129.50 EUR = 259.00 EUR" in body
    assert "1 x USB-C Cable (CAB-1) at 9.99 EUR = 9.99 EUR" in body
    assert "Total: 268.99 EUR" in body
    assert "12 Analytical Row" in body
    assert "268.99 EUR" in html_part(message)
    row = await notifications.wait_notification(envelope.event_id, "SENT")
    assert (row["recipient"], row["subject"], row["attempts"], row["template"]) == (
        shopper.email,
        f"Your order {number} is confirmed",
        1,
        "order_confirmed",
    )
    # A re-sent copy (after a lost outcome) would carry the same Message-ID: one message.
    assert message["X-Ecommerce-Notification-Id"] == str(row["id"])
    assert message["Message-ID"].startswith(f"<{row['id']}@")


async def test_a_redelivered_event_sends_nothing_more(notifications: NotificationHarness):
    shopper = await notifications.customer()
    payload = order_confirmed(shopper.account_id, [item("Desk Lamp", 1, 4_500)])
    envelope = await notifications.publish("order.confirmed", payload, aggregate_id=payload.order_id)
    await notifications.wait_mail(shopper.email)
    duplicates_before = notifications.app.consumer.duplicates

    await notifications.deliver(envelope)
    await notifications.deliver(envelope)

    async def both_dropped() -> bool:
        return notifications.app.consumer.duplicates >= duplicates_before + 2

    await eventually(both_dropped, what="the two redeliveries to be dropped")
    # Something later on the same partition is handled, so the duplicates are long behind us.
    later = order_confirmed(shopper.account_id, [item("Desk Lamp", 1, 4_500)], order_id=payload.order_id)
    await notifications.publish("order.confirmed", later, aggregate_id=payload.order_id)
    await notifications.wait_mail(shopper.email, count=2)
    assert len(notifications.mail_to(shopper.email)) == 2
    rows = await notifications.execute(
        "SELECT count(*) FROM notifications WHERE event_id = :e", e=envelope.event_id
    )
    assert rows[0][0] == 1


async def test_registration_sends_a_welcome_to_the_address_in_the_event(notifications: NotificationHarness):
    account_id = str(uuid.uuid4())  # no lookup: the event carries the address and the name
    email = f"new-{account_id[:8]}@example.com"
    payload = account_events_pb2.AccountRegistered(account_id=account_id, email=email, name="Linus")

    await notifications.publish("account.registered", payload, aggregate_id=account_id)

    [message] = await notifications.wait_mail(email)
    assert message["Subject"] == "Welcome to Ecommerce Shop, Linus"
    assert "Your account new-" in text_part(message)


async def test_cancellation_email_gives_the_reason_in_words(notifications: NotificationHarness):
    shopper = await notifications.customer()
    payload = order_events_pb2.OrderCancelled(
        order_id=str(uuid.uuid4()),
        account_id=shopper.account_id,
        items=[item("Espresso Machine", 1, 34_900)],
        total=money(34_900),
        cancellation_reason=order_pb2.CANCELLATION_REASON_PAYMENT_DECLINED,
        reason="payment declined: card_declined",
        refund_expected=False,
    )

    await notifications.publish("order.cancelled", payload, aggregate_id=payload.order_id)

    [message] = await notifications.wait_mail(shopper.email)
    assert message["Subject"].endswith("was cancelled")
    body = text_part(message)
    assert "was cancelled: your payment was declined." in body
    assert "You have not been charged." in body
    assert "CANCELLATION_REASON" not in body


async def test_refund_email_shows_the_amount_in_the_currency_of_the_payment(
    notifications: NotificationHarness,
):
    shopper = await notifications.customer()
    payload = payment_events_pb2.PaymentRefunded(
        payment_id=str(uuid.uuid4()),
        order_id=str(uuid.uuid4()),
        account_id=shopper.account_id,
        amount=money(12_500, "JPY"),
        reason="order cancelled by customer",
    )

    await notifications.publish("payment.refunded", payload, aggregate_id=payload.order_id)

    [message] = await notifications.wait_mail(shopper.email)
    assert message["Subject"].startswith("Your refund of 12500 JPY for order ")
    assert "we have refunded 12500 JPY" in text_part(message)


async def test_event_text_is_escaped_in_the_html_part(notifications: NotificationHarness):
    shopper = await notifications.customer(name="<b>Mallory</b>")
    payload = order_confirmed(shopper.account_id, [item('<script>alert("x")</script>', 1, 100)])

    await notifications.publish("order.confirmed", payload, aggregate_id=payload.order_id)

    [message] = await notifications.wait_mail(shopper.email)
    html = html_part(message)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "&lt;b&gt;Mallory&lt;/b&gt;" in html
    assert '<script>alert("x")</script>' in text_part(message)  # plain text is not HTML


async def test_shipped_and_delivered_emails_follow_the_order(notifications: NotificationHarness):
    shopper = await notifications.customer()
    order_id = str(uuid.uuid4())
    common = {
        "order_id": order_id,
        "account_id": shopper.account_id,
        "items": [item("Road Bike", 1, 89_900)],
        "total": money(89_900),
    }

    await notifications.publish(
        "order.shipped", order_events_pb2.OrderShipped(**common), aggregate_id=order_id
    )
    await notifications.publish(
        "order.delivered", order_events_pb2.OrderDelivered(**common), aggregate_id=order_id
    )

    messages = await notifications.wait_mail(shopper.email, count=2)
    number = order_id.split("-")[0].upper()
    assert {m["Subject"] for m in messages} == {
        f"Your order {number} is on its way",
        f"Your order {number} was delivered",
    }


async def test_smtp_server_down_is_retried_and_the_email_sent_once_it_is_back(
    notifications: NotificationHarness,
):
    notifications.service.mail_backoff = Backoff(initial=0.05, maximum=0.3, max_attempts=1000)
    shopper = await notifications.customer()
    payload = order_confirmed(shopper.account_id, [item("Kettle", 1, 2_999)])

    with mailbox_down(notifications.mailbox):
        envelope = await notifications.publish("order.confirmed", payload, aggregate_id=payload.order_id)

        async def retried() -> bool:
            row = await notifications.notification(envelope.event_id)
            return row is not None and row["attempts"] >= 2 and row["status"] == "PENDING"

        await eventually(retried, what="the send to be retried")
        row = await notifications.notification(envelope.event_id)
        assert row is not None
        assert "connect" in row["last_error"].lower()

    [message] = await notifications.wait_mail(shopper.email)
    assert message["Subject"].endswith("is confirmed")
    sent = await notifications.wait_notification(envelope.event_id, "SENT")
    assert sent["last_error"] == ""
    assert sent["sent_at"] is not None


async def test_past_the_retry_budget_the_email_is_failed_and_its_event_dead_lettered(
    notifications: NotificationHarness,
):
    shopper = await notifications.customer()
    payload = order_confirmed(shopper.account_id, [item("Kettle", 1, 2_999)])

    with mailbox_down(notifications.mailbox):
        envelope = await notifications.publish("order.confirmed", payload, aggregate_id=payload.order_id)
        failed = await notifications.wait_notification(envelope.event_id, "FAILED")

        # The partition keeps flowing: the next event of the same order is consumed meanwhile.
        later = order_events_pb2.OrderShipped(
            order_id=payload.order_id, account_id=shopper.account_id, items=payload.items, total=payload.total
        )
        next_envelope = await notifications.publish("order.shipped", later, aggregate_id=payload.order_id)

        async def consumed() -> bool:
            return await notifications.notification(next_envelope.event_id) is not None

        await eventually(consumed, what="the next event to be consumed")

    assert failed["attempts"] == notifications.service.mail_backoff.max_attempts
    assert failed["sent_at"] is None
    assert failed["last_error"]

    async def dead_lettered() -> list:
        return [
            (e, h)
            for e, h in await notifications.dead_letters("order.events.dlq")
            if e.event_id == envelope.event_id
        ]

    [(dead, headers)] = await eventually(dead_lettered, what="the event on order.events.dlq")
    assert dead == envelope
    assert headers["dlq-consumer"] == b"notification-email"
    assert not [m for m in notifications.mail_to(shopper.email) if m["Subject"].endswith("is confirmed")]


async def test_an_email_to_an_unknown_account_fails_without_retrying(notifications: NotificationHarness):
    payload = order_confirmed(str(uuid.uuid4()), [item("Kettle", 1, 2_999)])

    envelope = await notifications.publish("order.confirmed", payload, aggregate_id=payload.order_id)

    failed = await notifications.wait_notification(envelope.event_id, "FAILED")
    assert (failed["attempts"], failed["last_error"]) == (1, "recipient account not found")


async def test_an_event_without_an_account_id_records_nothing_and_the_consumer_goes_on(
    notifications: NotificationHarness,
):
    shopper = await notifications.customer()
    broken = order_confirmed("not-a-uuid", [item("Kettle", 1, 2_999)])
    good = order_confirmed(shopper.account_id, [item("Kettle", 1, 2_999)], order_id=broken.order_id)

    bad_envelope = await notifications.publish("order.confirmed", broken, aggregate_id=broken.order_id)
    await notifications.publish("order.confirmed", good, aggregate_id=broken.order_id)

    await notifications.wait_mail(shopper.email)
    assert await notifications.notification(bad_envelope.event_id) is None


async def test_a_variable_missing_from_the_event_still_sends_the_email_and_logs_the_gap(
    notifications: NotificationHarness, caplog
):
    shopper = await notifications.customer()
    # No total and no shipping address: a producer that left them out.
    payload = order_confirmed(
        shopper.account_id, [item("Tea Pot", 1, 1_500)], total=None, shipping_address=None
    )
    caplog.set_level(logging.WARNING, logger="notification.templates")

    envelope = await notifications.publish("order.confirmed", payload, aggregate_id=payload.order_id)

    [message] = await notifications.wait_mail(shopper.email)
    body = text_part(message)
    assert "1 x Tea Pot (SKU-TEA) at 15.00 EUR = 15.00 EUR" in body
    assert "Total:\n" in body
    row = await notifications.wait_notification(envelope.event_id, "SENT")
    gaps = [r for r in caplog.records if r.name == "notification.templates"]
    assert gaps, "the gap was not logged"
    assert gaps[-1].missing_variables == ["shipping_address", "total"]
    assert gaps[-1].reference == str(row["id"])
