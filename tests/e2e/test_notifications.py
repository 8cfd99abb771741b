"""The shopper hears about every order, end to end: the confirmation e-mail lands in the platform's
local mailbox, the order's statuses arrive over a graphql-transport-ws subscription, and a shop's
system on loopback receives signed webhooks. Everything through the gateway, as a client would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from notification.webhooks import verify_signature
from tests.e2e.test_account_graphql import admin_session, codes, sign_up
from tests.helpers import eventually, saga_histories, unique_email
from tests.integration.notification.receiver import Receiver

pytestmark = pytest.mark.e2e

CREATE_CATEGORY = """
mutation CreateCategory($name: String!, $slug: String) { createCategory(name: $name, slug: $slug) { slug } }"""
CREATE_PRODUCT = """
mutation CreateProduct($input: CreateProductInput!) { createProduct(input: $input) { id name } }"""
CREATE_ORDER = """
mutation CreateOrder($input: CreateOrderInput!) {
  createOrder(input: $input) { id status total { amount currency } }
}"""
ORDER = "query Order($id: ID!) { order(id: $id) { id status } }"
SHIP = "mutation Ship($id: ID!) { shipOrder(id: $id) { status } }"
DELIVER = "mutation Deliver($id: ID!) { deliverOrder(id: $id) { status } }"
ADJUST_STOCK = """
mutation AdjustStock($id: ID!, $delta: Int!) { adjustStock(productId: $id, delta: $delta) { stock } }"""
MY_NOTIFICATIONS = """
query Mine($first: Int, $after: String) {
  myNotifications(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id accountId channel template eventType recipient subject status attempts lastError sentAt } }
  }
}"""
CREATE_WEBHOOK = """
mutation CreateWebhook($url: String!, $events: [String!]!, $description: String) {
  createWebhook(url: $url, events: $events, description: $description) {
    secret
    webhook { id url events description active createdAt }
  }
}"""
DELETE_WEBHOOK = "mutation DeleteWebhook($id: ID!) { deleteWebhook(id: $id) { id active } }"
WEBHOOKS = "query Webhooks($all: Boolean) { webhooks(includeDeleted: $all) { id active events } }"
WEBHOOK_DELIVERIES = """
query Deliveries($id: ID!) {
  webhookDeliveries(webhookId: $id) {
    totalCount
    edges { node { id webhookId eventId eventType status responseStatus attempts lastError deliveredAt } }
  }
}"""
ORDER_STATUS_CHANGED = """
subscription Watch($id: ID!) {
  orderStatusChanged(orderId: $id) { id status history { status } total { amount currency } }
}"""

PROTOCOL = "graphql-transport-ws"


# -- the shop -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def shop(gateway) -> dict[str, Any]:
    """An administrator and a product in stock."""
    admin = (await admin_session(gateway))["accessToken"]
    category = await gateway.post(
        CREATE_CATEGORY, {"name": "Kitchen", "slug": f"kitchen-{uuid.uuid4().hex[:8]}"}, token=admin
    )
    assert "errors" not in category, category
    product = await gateway.post(
        CREATE_PRODUCT,
        {
            "input": {
                "sku": f"KET-{uuid.uuid4().hex[:8].upper()}",
                "name": "Copper Kettle",
                "description": "Boils water beautifully.",
                "price": "39.90",
                "currency": "EUR",
                "categorySlug": category["data"]["createCategory"]["slug"],
                "stock": 500,
                "featured": False,
            }
        },
        token=admin,
    )
    assert "errors" not in product, product
    return {
        "admin": admin,
        "product": product["data"]["createProduct"],
        "category": category["data"]["createCategory"]["slug"],
    }


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver().running() as receiver:
        yield receiver


async def place_order(
    gateway, shop, token: str, *, quantity: int = 2, card: str = "tok_visa"
) -> dict[str, Any]:
    body = await gateway.post(
        CREATE_ORDER,
        {
            "input": {
                "items": [{"productId": shop["product"]["id"], "quantity": quantity}],
                "paymentToken": card,
                "shippingAddress": {
                    "name": "Ada Lovelace",
                    "line1": "12 Analytical Row",
                    "city": "London",
                    "postalCode": "N1 9GU",
                    "country": "GB",
                },
            }
        },
        token=token,
    )
    assert "errors" not in body, body
    return body["data"]["createOrder"]


async def wait_status(gateway, order_id: str, token: str, status: str) -> None:
    async def reached() -> bool:
        body = await gateway.post(ORDER, {"id": order_id}, token=token)
        return body["data"]["order"]["status"] == status

    await eventually(reached, timeout=60, what=f"order {order_id} to be {status}")


def mailbox(gateway):  # type: ignore[no-untyped-def]
    box = gateway.platform.infra.mailbox
    assert box is not None, "the platform runs without its local mailbox"
    return box


def mail_to(gateway, address: str) -> list[Any]:
    return [m for m in mailbox(gateway).messages() if m["To"] == address]


# -- a graphql-transport-ws client ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def websocket(gateway, token: str | None) -> AsyncIterator[ClientConnection]:
    """A connection past `connection_init`, with the token in its payload."""
    url = gateway.url.replace("http://", "ws://")
    async with connect(url, subprotocols=[PROTOCOL]) as ws:
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert ack["type"] == "connection_ack", ack
        yield ws


async def subscribe(ws: ClientConnection, order_id: str, operation_id: str = "1") -> None:
    await ws.send(
        json.dumps(
            {
                "id": operation_id,
                "type": "subscribe",
                "payload": {"query": ORDER_STATUS_CHANGED, "variables": {"id": order_id}},
            }
        )
    )


async def next_message(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if message["type"] != "ping":
            return message
        await ws.send(json.dumps({"type": "pong"}))


async def statuses_until(ws: ClientConnection, last: str) -> list[str]:
    seen: list[str] = []
    while not seen or seen[-1] != last:
        message = await next_message(ws)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        seen.append(message["payload"]["data"]["orderStatusChanged"]["status"])
    return seen


async def refused(ws: ClientConnection, order_id: str) -> list[str]:
    """The codes of a subscription that must fail, which then completes."""
    await subscribe(ws, order_id)
    message = await next_message(ws)
    assert message["type"] in ("next", "error"), message
    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    assert not (message["payload"].get("data") if message["type"] == "next" else None)
    return [e.get("extensions", {}).get("code") for e in errors]


# -- e-mail -----------------------------------------------------------------------------------------


async def test_a_confirmed_order_sends_one_email_with_its_lines_and_total(gateway, shop):
    email = unique_email("shopper")
    shopper = await sign_up(gateway, email=email, name="Grace Hopper")
    token = shopper["accessToken"]

    order = await place_order(gateway, shop, token, quantity=2)
    await wait_status(gateway, order["id"], token, "CONFIRMED")

    async def confirmation() -> list[Any]:
        return [m for m in mail_to(gateway, email) if m["Subject"].endswith("is confirmed")]

    [message] = await eventually(confirmation, timeout=60, what="the confirmation e-mail")
    number = order["id"].split("-")[0].upper()
    assert message["Subject"] == f"Your order {number} is confirmed"
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "Hello Grace Hopper," in body
    assert "2 x Copper Kettle" in body
    assert "at 39.90 EUR = 79.80 EUR" in body
    assert "Total: 79.80 EUR" in body

    async def listed() -> dict[str, Any] | None:
        body = await gateway.post(MY_NOTIFICATIONS, {"first": 10}, token=token)
        nodes = [e["node"] for e in body["data"]["myNotifications"]["edges"]]
        return (
            body
            if {n["template"] for n in nodes if n["status"] == "SENT"} >= {"welcome", "order_confirmed"}
            else None
        )

    mine = (await eventually(listed, timeout=60, what="both notifications SENT"))["data"]["myNotifications"]
    assert mine["totalCount"] == 2
    confirmed = next(e["node"] for e in mine["edges"] if e["node"]["template"] == "order_confirmed")
    assert confirmed["recipient"] == email
    assert confirmed["accountId"] == shopper["account"]["id"]
    assert (confirmed["channel"], confirmed["eventType"], confirmed["attempts"], confirmed["lastError"]) == (
        "EMAIL",
        "order.confirmed",
        1,
        None,
    )
    # Exactly one each: the welcome and the confirmation, nothing twice.
    assert sorted(m["Subject"].split()[0] for m in mail_to(gateway, email)) == ["Welcome", "Your"]


async def test_stock_falling_below_its_threshold_emails_every_admin_and_no_customer(gateway, shop):
    ada, grace = await admin_session(gateway), await admin_session(gateway)
    shopper_email = unique_email("shopper")
    await sign_up(gateway, email=shopper_email)
    sku = f"MUG-{uuid.uuid4().hex[:8].upper()}"
    created = await gateway.post(
        CREATE_PRODUCT,
        {
            "input": {
                "sku": sku,
                "name": "Enamel Mug",
                "price": "12.00",
                "currency": "EUR",
                "categorySlug": shop["category"],
                "stock": 10,
                "lowStockThreshold": 3,
            }
        },
        token=ada["accessToken"],
    )
    assert "errors" not in created, created

    adjusted = await gateway.post(
        ADJUST_STOCK, {"id": created["data"]["createProduct"]["id"], "delta": -8}, token=grace["accessToken"]
    )
    assert adjusted["data"]["adjustStock"]["stock"] == 2

    def alerts(address: str) -> list[Any]:
        return [m for m in mail_to(gateway, address) if sku in m["Subject"]]

    async def both_alerted() -> list[Any] | None:
        found = alerts(ada["account"]["email"]) + alerts(grace["account"]["email"])
        return found if len(found) >= 2 else None

    messages = await eventually(both_alerted, timeout=60, what="the low-stock alert to both admins")
    assert [m["Subject"] for m in messages] == [f"Low stock: Enamel Mug (Default), SKU {sku}, 2 left"] * 2
    body = messages[0].get_body(preferencelist=("plain",)).get_content()
    assert "In stock:  2" in body
    assert "Threshold: 3" in body
    assert alerts(shopper_email) == []


async def test_my_notifications_needs_a_signed_in_caller_and_a_sane_page(gateway):
    assert codes(await gateway.post(MY_NOTIFICATIONS, {"first": 5})) == ["UNAUTHENTICATED"]
    token = (await sign_up(gateway))["accessToken"]
    for variables, field in [
        ({"first": 0}, "first"),
        ({"first": 101}, "first"),
        ({"after": "nope"}, "after"),  # the argument, not the service's field (page_token)
    ]:
        body = await gateway.post(MY_NOTIFICATIONS, variables, token=token)
        assert codes(body) == ["BAD_USER_INPUT"], body
        assert body["errors"][0]["extensions"]["field"] == field


# -- the subscription -------------------------------------------------------------------------------


async def test_a_subscriber_sees_every_status_of_its_order(gateway, shop):
    shopper = await sign_up(gateway)
    token = shopper["accessToken"]

    async with websocket(gateway, token) as ws:
        order = await place_order(gateway, shop, token)
        await subscribe(ws, order["id"])

        assert await statuses_until(ws, "CONFIRMED") in saga_histories("CONFIRMED")

        # What happens from now on arrives live, fed from order.events.
        assert "errors" not in await gateway.post(SHIP, {"id": order["id"]}, token=shop["admin"])
        assert await statuses_until(ws, "SHIPPED") == ["SHIPPED"]
        assert "errors" not in await gateway.post(DELIVER, {"id": order["id"]}, token=shop["admin"])
        assert await statuses_until(ws, "DELIVERED") == ["DELIVERED"]
        assert (await next_message(ws))["type"] == "complete"


async def test_a_declined_order_ends_its_subscription_cancelled(gateway, shop):
    token = (await sign_up(gateway))["accessToken"]

    async with websocket(gateway, token) as ws:
        order = await place_order(gateway, shop, token, card="tok_chargeDeclined")
        await subscribe(ws, order["id"])

        seen = await statuses_until(ws, "CANCELLED")
        assert seen[0] == "PENDING"
        assert (await next_message(ws))["type"] == "complete"


async def test_an_admin_may_watch_any_order(gateway, shop):
    token = (await sign_up(gateway))["accessToken"]
    order = await place_order(gateway, shop, token)
    await wait_status(gateway, order["id"], token, "CONFIRMED")

    async with websocket(gateway, shop["admin"]) as ws:
        await subscribe(ws, order["id"])
        assert await statuses_until(ws, "CONFIRMED") in saga_histories("CONFIRMED")


async def test_watching_someone_elses_or_an_unknown_order_is_refused(gateway, shop):
    owner = (await sign_up(gateway))["accessToken"]
    stranger = (await sign_up(gateway))["accessToken"]
    order = await place_order(gateway, shop, owner)

    async with websocket(gateway, stranger) as ws:
        assert await refused(ws, order["id"]) == ["NOT_FOUND"]
    async with websocket(gateway, stranger) as ws:
        assert await refused(ws, str(uuid.uuid4())) == ["NOT_FOUND"]
    async with websocket(gateway, stranger) as ws:
        assert await refused(ws, "'; DROP TABLE orders;--") == ["BAD_USER_INPUT"]
    async with websocket(gateway, None) as ws:
        assert await refused(ws, order["id"]) == ["UNAUTHENTICATED"]


async def test_a_token_that_does_not_verify_closes_the_connection(gateway):
    url = gateway.url.replace("http://", "ws://")
    async with connect(url, subprotocols=[PROTOCOL]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer not.a.jwt"}})
        )
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


# -- webhooks -------------------------------------------------------------------------------------


async def test_an_admin_webhook_receives_signed_order_events(gateway, shop, receiver):
    admin = shop["admin"]
    created = await gateway.post(
        CREATE_WEBHOOK,
        {"url": receiver.url("/erp"), "events": ["order.confirmed"], "description": "ERP"},
        token=admin,
    )
    assert "errors" not in created, created
    secret = created["data"]["createWebhook"]["secret"]
    hook = created["data"]["createWebhook"]["webhook"]
    assert (hook["url"], hook["events"], hook["active"]) == (receiver.url("/erp"), ["order.confirmed"], True)
    token = (await sign_up(gateway))["accessToken"]

    order = await place_order(gateway, shop, token)

    async def delivered() -> list[Any]:
        return [r for r in receiver.requests if orjson.loads(r.body)["data"]["order_id"] == order["id"]]

    [request] = await eventually(delivered, timeout=60, what="the webhook delivery")
    assert request.path == "/erp"
    assert verify_signature(secret, request.headers["x-ecommerce-signature"], request.body)
    assert not verify_signature(
        secret, request.headers["x-ecommerce-signature"], request.body.replace(b"79", b"97")
    )
    event = orjson.loads(request.body)
    assert event["type"] == "order.confirmed"
    assert event["data"]["total"] == {"amount_minor": "7980", "currency": "EUR"}

    async def logged() -> dict[str, Any] | None:
        body = await gateway.post(WEBHOOK_DELIVERIES, {"id": hook["id"]}, token=admin)
        edges = body["data"]["webhookDeliveries"]["edges"]
        return edges[0]["node"] if edges and edges[0]["node"]["status"] == "DELIVERED" else None

    entry = await eventually(logged, timeout=60, what="the delivery log")
    assert (entry["eventId"], entry["eventType"], entry["responseStatus"], entry["attempts"]) == (
        event["id"],
        "order.confirmed",
        200,
        1,
    )

    deleted = await gateway.post(DELETE_WEBHOOK, {"id": hook["id"]}, token=admin)
    assert deleted["data"]["deleteWebhook"] == {"id": hook["id"], "active": False}
    listed = await gateway.post(WEBHOOKS, {"all": False}, token=admin)
    assert hook["id"] not in [w["id"] for w in listed["data"]["webhooks"]]


async def test_webhook_operations_are_for_admins_only(gateway, shop):
    customer = (await sign_up(gateway))["accessToken"]
    some_id = str(uuid.uuid4())
    for document, variables in [
        (CREATE_WEBHOOK, {"url": "http://127.0.0.1:9/h", "events": ["order.confirmed"]}),
        (DELETE_WEBHOOK, {"id": some_id}),
        (WEBHOOKS, {}),
        (WEBHOOK_DELIVERIES, {"id": some_id}),
    ]:
        assert codes(await gateway.post(document, variables, token=customer)) == ["FORBIDDEN"]
        assert codes(await gateway.post(document, variables)) == ["UNAUTHENTICATED"]
    assert codes(await gateway.post(DELETE_WEBHOOK, {"id": some_id}, token=shop["admin"])) == ["NOT_FOUND"]


async def test_bad_webhook_input_is_refused_with_the_field(gateway, shop):
    admin = shop["admin"]
    before = await gateway.post(WEBHOOKS, {"all": True}, token=admin)
    for variables, field in [
        ({"url": "ftp://example.com/hook", "events": ["order.confirmed"]}, "url"),
        ({"url": "https://example.com/" + "a" * 2100, "events": ["order.confirmed"]}, "url"),
        ({"url": "http://127.0.0.1:9/h", "events": ["order.confirmed", "order.teleported"]}, "events[1]"),
        ({"url": "http://127.0.0.1:9/h", "events": []}, "events"),
        (
            {"url": "http://127.0.0.1:9/h", "events": ["order.confirmed"], "description": "x" * 501},
            "description",
        ),
    ]:
        body = await gateway.post(CREATE_WEBHOOK, variables, token=admin)
        assert codes(body) == ["BAD_USER_INPUT"], body
        assert body["errors"][0]["extensions"]["field"] == field
    after = await gateway.post(WEBHOOKS, {"all": True}, token=admin)
    assert after == before
