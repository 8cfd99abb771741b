"""Order e-mails with the price breakdown, and a guest's order e-mails: sent to the e-mail the
order was placed with (there is no account to ask), with the order id and a link to follow it."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from ecommerce.events.v1 import order_events_pb2
from ecommerce.order.v1 import order_pb2
from notification.models import GUEST
from tests.integration.notification.conftest import NotificationHarness, item, money, order_confirmed
from tests.integration.notification.test_email import html_part, text_part

# 2 x 20.00 = 40.00, -4.00 coupon, +4.90 shipping, +8.18 tax = 49.08
BREAKDOWN = {
    "subtotal": money(4_000),
    "discount": money(400),
    "shipping": money(490),
    "tax": money(818),
    "total": money(4_908),
}
BREAKDOWN_LINES = [
    "Subtotal: 40.00 EUR",
    "Discount: -4.00 EUR",
    "Shipping: 4.90 EUR",
    "Tax: 8.18 EUR",
    "Total: 49.08 EUR",
]


async def test_a_guests_confirmation_goes_to_the_orders_email_with_breakdown_id_and_link(
    notifications: NotificationHarness,
):
    email = f"guest+{uuid.uuid4().hex[:6]}@example.com"
    payload = order_confirmed("", [item("Lamp", 2, 2_000)], email=email, **BREAKDOWN)

    envelope = await notifications.publish("order.confirmed", payload, aggregate_id=payload.order_id)

    [message] = await notifications.wait_mail(email)
    body = text_part(message)
    link = f"{notifications.settings.shop_url.rstrip('/')}/orders/{payload.order_id}?email={quote(email)}"
    assert "Hello Ada Lovelace," in body  # the shipping name: a guest has no account name
    assert all(line in body for line in BREAKDOWN_LINES), body
    assert f"(id {payload.order_id})" in body
    assert link in body
    assert "%40" in link
    html = html_part(message)
    assert f'href="{link}"' in html
    assert "-4.00 EUR" in html
    assert "8.18 EUR" in html
    row = await notifications.wait_notification(envelope.event_id, "SENT")
    assert (row["recipient"], row["account_id"]) == (email, GUEST)


async def test_a_guests_cancellation_greets_without_a_name_and_still_links_the_order(
    notifications: NotificationHarness,
):
    email = f"guest+{uuid.uuid4().hex[:6]}@example.com"
    payload = order_events_pb2.OrderCancelled(
        order_id=str(uuid.uuid4()),
        email=email,
        items=[item("Lamp", 1, 2_000)],
        cancellation_reason=order_pb2.CANCELLATION_REASON_OUT_OF_STOCK,
        **{k: v for k, v in BREAKDOWN.items()},
    )

    await notifications.publish("order.cancelled", payload, aggregate_id=payload.order_id)

    [message] = await notifications.wait_mail(email)
    body = text_part(message)
    assert "Hello customer," in body
    assert f"/orders/{payload.order_id}?email=" in body
    assert "Subtotal: 40.00 EUR" in body


async def test_an_accounts_order_email_shows_the_breakdown_and_no_guest_link(
    notifications: NotificationHarness,
):
    shopper = await notifications.customer(name="Grace Hopper")
    payload = order_confirmed(shopper.account_id, [item("Lamp", 2, 2_000)], email=shopper.email, **BREAKDOWN)

    await notifications.publish("order.confirmed", payload, aggregate_id=payload.order_id)

    [message] = await notifications.wait_mail(shopper.email)
    body = text_part(message)
    assert "Hello Grace Hopper," in body
    assert all(line in body for line in BREAKDOWN_LINES), body
    assert "/orders/" not in body


async def test_an_order_event_with_neither_account_nor_email_records_nothing(
    notifications: NotificationHarness,
):
    shopper = await notifications.customer()
    nobody = order_confirmed("", [item("Kettle", 1, 2_999)])
    good = order_confirmed(shopper.account_id, [item("Kettle", 1, 2_999)], order_id=nobody.order_id)

    bad_envelope = await notifications.publish("order.confirmed", nobody, aggregate_id=nobody.order_id)
    await notifications.publish("order.confirmed", good, aggregate_id=nobody.order_id)

    await notifications.wait_mail(shopper.email)
    assert await notifications.notification(bad_envelope.event_id) is None
