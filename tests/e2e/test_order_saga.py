"""Orders through HTTP GraphQL with every service running as its own process: the saga's way to
CONFIRMED, its compensations, idempotent creation, bad input and other customers' orders."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from tests.e2e.test_account_graphql import admin_session, codes, first_error, sign_up
from tests.e2e.test_catalog_graphql import DELETE_PRODUCT, new_category, new_product
from tests.helpers import eventually, saga_histories

ORDER_FIELDS = """
  id status cancellationReason accountId
  items { productId sku name quantity unitPrice { amount currency } lineTotal { amount currency } product { id stock } }
  total { amount currency }
  history { status reason at changedBy }
  shippingAddress { name line1 line2 city region postalCode country }
  createdAt updatedAt
"""
CREATE_ORDER = f"""
mutation CreateOrder($input: CreateOrderInput!, $key: String) {{
  createOrder(input: $input, idempotencyKey: $key) {{ {ORDER_FIELDS} }}
}}"""
CREATE_AND_WAIT = f"""
mutation CreateOrderAndWait($input: CreateOrderInput!, $key: String, $wait: Int) {{
  createOrder(input: $input, idempotencyKey: $key, waitSeconds: $wait) {{ {ORDER_FIELDS} }}
}}"""
ORDER = f"""
query Order($id: ID!) {{
  order(id: $id) {{ {ORDER_FIELDS} payment {{ id orderId status amount {{ amount currency }} }} }}
}}"""
MY_ORDERS = """
query MyOrders($first: Int, $after: String) {
  myOrders(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id status total { amount } } }
  }
}"""
ORDERS = """
query Orders($first: Int, $after: String, $status: OrderStatus) {
  orders(first: $first, after: $after, status: $status) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { id status accountId } }
  }
}"""
CANCEL = """
mutation Cancel($id: ID!, $note: String) { cancelOrder(id: $id, note: $note) { id status cancellationReason } }"""
SHIP = "mutation Ship($id: ID!) { shipOrder(id: $id) { id status } }"
DELIVER = "mutation Deliver($id: ID!) { deliverOrder(id: $id) { id status history { status changedBy } } }"
STOCK = "query Stock($id: ID!) { product(id: $id) { stock } }"

ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 Analytical Row",
    "city": "London",
    "postalCode": "N1 9GU",
    "country": "GB",
}
FINAL = ("CONFIRMED", "CANCELLED")


def order_input(lines: list[tuple[str, int]], token: str = "tok_visa", **overrides) -> dict:
    values = {
        "items": [{"productId": p, "quantity": q} for p, q in lines],
        "paymentToken": token,
        "shippingAddress": dict(ADDRESS),
    }
    values.update(overrides)
    return values


async def place(
    gateway, token: str, lines: list[tuple[str, int]], *, payment: str = "tok_visa", key=None
) -> dict:
    body = await gateway.post(CREATE_ORDER, {"input": order_input(lines, payment), "key": key}, token=token)
    assert "errors" not in body, body
    return body["data"]["createOrder"]


async def read(gateway, token: str, order_id: str) -> dict:
    body = await gateway.post(ORDER, {"id": order_id}, token=token)
    assert "errors" not in body, body
    return body["data"]["order"]


async def settled(
    gateway, token: str, order_id: str, *, payment: str | None = None, timeout: float = 60
) -> dict:
    """The order once it is CONFIRMED or CANCELLED (and its payment in `payment`, when given)."""

    async def done() -> dict | None:
        order = await read(gateway, token, order_id)
        if order["status"] not in FINAL:
            return None
        if payment is not None and (order["payment"] or {}).get("status") != payment:
            return None
        return order

    return await eventually(done, timeout=timeout, interval=0.1, what=f"order {order_id} settled")


async def stock(gateway, product_id: str) -> int:
    body = await gateway.post(STOCK, {"id": product_id})
    assert "errors" not in body, body
    return body["data"]["product"]["stock"]


async def stock_becomes(gateway, product_id: str, expected: int, timeout: float = 30) -> None:
    async def reached() -> bool:
        return await stock(gateway, product_id) == expected

    await eventually(reached, timeout=timeout, interval=0.1, what=f"stock of {product_id} at {expected}")


async def order_count(gateway, token: str) -> int:
    body = await gateway.post(MY_ORDERS, {"first": 1}, token=token)
    assert "errors" not in body, body
    return body["data"]["myOrders"]["totalCount"]


@pytest.fixture(scope="module")
async def shop(gateway) -> dict:
    admin = (await admin_session(gateway))["accessToken"]
    return {"admin": admin, "category": await new_category(gateway, admin, "Saga")}


async def product(
    gateway, shop: dict, *, stock: int = 10, price: str = "12.50", currency: str = "EUR"
) -> str:
    created = await new_product(
        gateway,
        shop["admin"],
        shop["category"],
        name="Brass Lamp",
        price=price,
        currency=currency,
        stock=stock,
    )
    return created["id"]


async def customer(gateway) -> str:
    return (await sign_up(gateway))["accessToken"]


# -- the saga's way through --------------------------------------------------------------------------


async def test_an_order_is_confirmed_paid_and_its_stock_sold(gateway, shop):
    lamp = await product(gateway, shop, stock=5, price="12.50")
    token = await customer(gateway)

    placed = await place(gateway, token, [(lamp, 2)])
    order = await settled(gateway, token, placed["id"], payment="SUCCEEDED")

    assert placed["status"] == "PENDING"
    assert order["status"] == "CONFIRMED"
    assert [h["status"] for h in order["history"]] in saga_histories("CONFIRMED")
    assert order["total"] == {"amount": "25.00", "currency": "EUR"}
    assert order["items"] == [
        {
            "productId": lamp,
            "sku": order["items"][0]["sku"],
            "name": "Brass Lamp",
            "quantity": 2,
            "unitPrice": {"amount": "12.50", "currency": "EUR"},
            "lineTotal": {"amount": "25.00", "currency": "EUR"},
            "product": {"id": lamp, "stock": 3},
        }
    ]
    assert order["payment"]["amount"] == {"amount": "25.00", "currency": "EUR"}
    assert order["payment"]["orderId"] == placed["id"]
    assert await stock(gateway, lamp) == 3


async def test_a_declined_payment_cancels_the_order_and_gives_the_stock_back_once(gateway, shop):
    lamp = await product(gateway, shop, stock=5)
    token = await customer(gateway)

    placed = await place(gateway, token, [(lamp, 2)], payment="tok_chargeDeclined")
    order = await settled(gateway, token, placed["id"], payment="FAILED")
    await stock_becomes(gateway, lamp, 5)

    assert (order["status"], order["cancellationReason"]) == ("CANCELLED", "PAYMENT_DECLINED")
    assert [h["status"] for h in order["history"]] in saga_histories("CANCELLED")
    # Released once: a second release would have made it 7; a later order still sees 5 to sell.
    follow_up = await place(gateway, token, [(lamp, 5)])
    assert (await settled(gateway, token, follow_up["id"]))["status"] == "CONFIRMED"
    assert await stock(gateway, lamp) == 0


async def test_an_order_beyond_the_stock_is_cancelled_out_of_stock_and_never_charged(gateway, shop):
    lamp = await product(gateway, shop, stock=1)
    token = await customer(gateway)

    placed = await place(gateway, token, [(lamp, 3)])
    order = await settled(gateway, token, placed["id"])

    assert (order["status"], order["cancellationReason"]) == ("CANCELLED", "OUT_OF_STOCK")
    assert [h["status"] for h in order["history"]] == ["PENDING", "CANCELLED"]
    # Authorised along with the reservation, then voided (or refused, the void coming first).
    await settled(gateway, token, placed["id"], payment="VOIDED")
    assert await stock(gateway, lamp) == 1


async def test_thirty_concurrent_orders_for_ten_units_confirm_exactly_ten(gateway, shop):
    lamp = await product(gateway, shop, stock=10)
    shoppers = [await customer(gateway) for _ in range(3)]

    placed = await asyncio.gather(*(place(gateway, shoppers[i % 3], [(lamp, 1)]) for i in range(30)))
    orders = [await settled(gateway, shoppers[i % 3], o["id"]) for i, o in enumerate(placed)]

    outcomes = Counter((o["status"], o["cancellationReason"]) for o in orders)
    assert outcomes == {("CONFIRMED", None): 10, ("CANCELLED", "OUT_OF_STOCK"): 20}
    # The twenty cancelled were authorised along with their reservations; each is voided.
    wanted = {"CONFIRMED": "SUCCEEDED", "CANCELLED": "VOIDED"}
    paid = [
        await settled(gateway, shoppers[i % 3], o["id"], payment=wanted[o["status"]])
        for i, o in enumerate(orders)
    ]
    assert Counter(o["payment"]["status"] for o in paid) == {"SUCCEEDED": 10, "VOIDED": 20}
    assert await stock(gateway, lamp) == 0


async def test_cancelling_a_confirmed_order_refunds_it_and_gives_the_stock_back(gateway, shop):
    lamp = await product(gateway, shop, stock=4)
    token = await customer(gateway)
    placed = await place(gateway, token, [(lamp, 3)])
    await settled(gateway, token, placed["id"], payment="SUCCEEDED")
    assert await stock(gateway, lamp) == 1

    cancelled = await gateway.post(CANCEL, {"id": placed["id"], "note": "changed my mind"}, token=token)
    order = await settled(gateway, token, placed["id"], payment="REFUNDED")
    await stock_becomes(gateway, lamp, 4)

    assert cancelled["data"]["cancelOrder"] == {
        "id": placed["id"],
        "status": "CANCELLED",
        "cancellationReason": "CUSTOMER_CANCELLED",
    }
    assert order["history"][-1]["reason"] == "cancelled by the customer: changed my mind"
    assert [h["status"] for h in order["history"]] in saga_histories("CONFIRMED", "CANCELLED")


async def test_an_admin_ships_and_delivers_and_a_shipped_order_cannot_be_cancelled(gateway, shop):
    lamp = await product(gateway, shop)
    token = await customer(gateway)
    placed = await place(gateway, token, [(lamp, 1)])
    await settled(gateway, token, placed["id"])

    by_customer = await gateway.post(SHIP, {"id": placed["id"]}, token=token)
    shipped = await gateway.post(SHIP, {"id": placed["id"]}, token=shop["admin"])
    cancel = await gateway.post(CANCEL, {"id": placed["id"]}, token=token)
    delivered = await gateway.post(DELIVER, {"id": placed["id"]}, token=shop["admin"])
    ship_again = await gateway.post(SHIP, {"id": placed["id"]}, token=shop["admin"])

    assert codes(by_customer) == ["FORBIDDEN"]
    assert shipped["data"]["shipOrder"]["status"] == "SHIPPED"
    assert codes(cancel) == ["CONFLICT"]
    history = delivered["data"]["deliverOrder"]["history"]
    assert [h["status"] for h in history][-2:] == ["SHIPPED", "DELIVERED"]
    assert history[-1]["changedBy"] is not None
    assert codes(ship_again) == ["CONFLICT"]
    assert (await read(gateway, token, placed["id"]))["status"] == "DELIVERED"


async def test_shipping_a_cancelled_order_is_a_conflict(gateway, shop):
    lamp = await product(gateway, shop)
    token = await customer(gateway)
    placed = await place(gateway, token, [(lamp, 1)])
    await gateway.post(CANCEL, {"id": placed["id"]}, token=token)

    shipped = await gateway.post(SHIP, {"id": placed["id"]}, token=shop["admin"])
    delivered = await gateway.post(DELIVER, {"id": placed["id"]}, token=shop["admin"])

    assert codes(shipped) == codes(delivered) == ["CONFLICT"]
    await stock_becomes(gateway, lamp, 10)


async def test_lines_naming_the_same_product_are_merged(gateway, shop):
    lamp = await product(gateway, shop)
    token = await customer(gateway)

    placed = await place(gateway, token, [(lamp, 2), (lamp, 3)])

    assert [(i["productId"], i["quantity"]) for i in placed["items"]] == [(lamp, 5)]
    assert placed["total"]["amount"] == "62.50"


# -- waiting for the saga ----------------------------------------------------------------------------------


async def place_and_wait(gateway, token: str, lines: list[tuple[str, int]], *, payment: str, wait) -> dict:
    return await gateway.post(
        CREATE_AND_WAIT, {"input": order_input(lines, payment), "wait": wait}, token=token
    )


async def test_an_order_placed_with_a_wait_is_answered_confirmed_in_one_call(gateway, shop):
    lamp = await product(gateway, shop, stock=5)
    token = await customer(gateway)

    body = await place_and_wait(gateway, token, [(lamp, 2)], payment="tok_visa", wait=5)

    assert "errors" not in body, body
    order = body["data"]["createOrder"]
    assert order["status"] == "CONFIRMED"
    assert [h["status"] for h in order["history"]] in saga_histories("CONFIRMED")


async def test_an_order_placed_with_a_wait_and_a_declined_card_is_answered_cancelled(gateway, shop):
    lamp = await product(gateway, shop, stock=5)
    token = await customer(gateway)

    body = await place_and_wait(gateway, token, [(lamp, 1)], payment="tok_chargeDeclined", wait=5)

    assert "errors" not in body, body
    order = body["data"]["createOrder"]
    assert (order["status"], order["cancellationReason"]) == ("CANCELLED", "PAYMENT_DECLINED")


@pytest.mark.parametrize("wait", [0, None])
async def test_an_order_placed_without_a_wait_is_answered_pending_at_once(gateway, shop, wait):
    lamp = await product(gateway, shop, stock=5)
    token = await customer(gateway)

    body = await place_and_wait(gateway, token, [(lamp, 1)], payment="tok_visa", wait=wait)

    assert "errors" not in body, body
    assert body["data"]["createOrder"]["status"] == "PENDING"


@pytest.mark.parametrize("wait", [-1, 11, 2**31 - 1])
async def test_a_wait_outside_0_to_10_seconds_is_bad_input_and_places_no_order(gateway, shop, wait):
    lamp = await product(gateway, shop, stock=5)
    token = await customer(gateway)

    body = await place_and_wait(gateway, token, [(lamp, 1)], payment="tok_visa", wait=wait)

    assert codes(body) == ["BAD_USER_INPUT"], body
    assert first_error(body)["extensions"]["field"] == "waitSeconds"
    assert await order_count(gateway, token) == 0
    assert await stock(gateway, lamp) == 5


async def test_a_waiting_order_needs_a_signed_in_caller(gateway, shop):
    lamp = await product(gateway, shop, stock=5)

    body = await place_and_wait(gateway, "", [(lamp, 1)], payment="tok_visa", wait=5)

    assert codes(body) == ["UNAUTHENTICATED"], body


# -- idempotent creation --------------------------------------------------------------------------------


async def test_the_same_idempotency_key_and_payload_return_the_same_order(gateway, shop):
    lamp = await product(gateway, shop)
    token = await customer(gateway)
    key = f"checkout-{uuid.uuid4()}"

    first = await place(gateway, token, [(lamp, 1)], key=key)
    again = await place(gateway, token, [(lamp, 1)], key=key)
    by_header = await gateway.post(
        CREATE_ORDER, {"input": order_input([(lamp, 1)])}, token=token, headers={"Idempotency-Key": key}
    )

    assert again["id"] == first["id"] == by_header["data"]["createOrder"]["id"]
    assert await order_count(gateway, token) == 1


async def test_the_same_key_with_another_payload_is_a_conflict(gateway, shop):
    lamp = await product(gateway, shop)
    token = await customer(gateway)
    key = f"checkout-{uuid.uuid4()}"
    await place(gateway, token, [(lamp, 1)], key=key)

    other = await gateway.post(CREATE_ORDER, {"input": order_input([(lamp, 2)]), "key": key}, token=token)
    by_header = await gateway.post(
        CREATE_ORDER, {"input": order_input([(lamp, 2)])}, token=token, headers={"Idempotency-Key": key}
    )

    assert codes(other) == codes(by_header) == ["CONFLICT"]
    assert first_error(other)["extensions"]["field"] == "idempotencyKey"
    assert await order_count(gateway, token) == 1


async def test_concurrent_requests_with_one_key_create_one_order(gateway, shop):
    lamp = await product(gateway, shop, stock=10)
    token = await customer(gateway)
    key = f"double-click-{uuid.uuid4()}"

    bodies = await asyncio.gather(
        *(
            gateway.post(CREATE_ORDER, {"input": order_input([(lamp, 1)]), "key": key}, token=token)
            for _ in range(8)
        )
    )

    assert all("errors" not in b for b in bodies), bodies
    assert len({b["data"]["createOrder"]["id"] for b in bodies}) == 1
    assert await order_count(gateway, token) == 1
    await settled(gateway, token, bodies[0]["data"]["createOrder"]["id"])
    assert await stock(gateway, lamp) == 9


async def test_a_key_in_the_header_and_another_in_the_argument_is_bad_input(gateway, shop):
    lamp = await product(gateway, shop)
    token = await customer(gateway)

    body = await gateway.post(
        CREATE_ORDER,
        {"input": order_input([(lamp, 1)]), "key": "a"},
        token=token,
        headers={"Idempotency-Key": "b"},
    )

    assert codes(body) == ["BAD_USER_INPUT"]
    assert first_error(body)["extensions"]["field"] == "idempotencyKey"
    assert await order_count(gateway, token) == 0


# -- bad input and other people's orders --------------------------------------------------------------

BAD_INPUT = [
    ("no-items", lambda p, a: order_input([]), "items"),
    ("51-lines", lambda p, a: order_input([(p, 1)] * 51), "items"),
    ("quantity-0", lambda p, a: order_input([(p, 0)]), "items[0].quantity"),
    ("quantity-1001", lambda p, a: order_input([(p, 1001)]), "items[0].quantity"),
    ("merged-over-1000", lambda p, a: order_input([(p, 600), (p, 600)]), "items[1].quantity"),
    ("unknown-product", lambda p, a: order_input([(str(uuid.uuid4()), 1)]), "items[0].productId"),
    ("archived-product", lambda p, a: order_input([(p, 1), (a, 1)]), "items[1].productId"),
    ("malformed-product", lambda p, a: order_input([("'; DROP TABLE orders; --", 1)]), "items[0].productId"),
    ("empty-token", lambda p, a: order_input([(p, 1)], token=""), "paymentToken"),
    ("unknown-token", lambda p, a: order_input([(p, 1)], token="tok_made_up"), "paymentToken"),
    ("huge-token", lambda p, a: order_input([(p, 1)], token="t" * 100_000), "paymentToken"),
    (
        "no-city",
        lambda p, a: order_input([(p, 1)], shippingAddress={**ADDRESS, "city": ""}),
        "shippingAddress.city",
    ),
    (
        "bad-country",
        lambda p, a: order_input([(p, 1)], shippingAddress={**ADDRESS, "country": "Narnia"}),
        "shippingAddress.country",
    ),
]


@pytest.mark.parametrize(("case", "make", "field"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
async def test_bad_input_names_the_field_and_creates_nothing(gateway, shop, case, make, field):
    lamp = await product(gateway, shop, stock=10)
    archived = await product(gateway, shop, stock=10)
    await gateway.post(DELETE_PRODUCT, {"id": archived}, token=shop["admin"])
    token = await customer(gateway)

    body = await gateway.post(CREATE_ORDER, {"input": make(lamp, archived)}, token=token)

    assert codes(body) == ["BAD_USER_INPUT"], body
    assert first_error(body)["extensions"]["field"] == field
    assert await order_count(gateway, token) == 0
    assert await stock(gateway, lamp) == 10


async def test_an_idempotency_key_over_255_characters_is_refused(gateway, shop):
    lamp = await product(gateway, shop)
    token = await customer(gateway)

    by_argument = await gateway.post(
        CREATE_ORDER, {"input": order_input([(lamp, 1)]), "key": "k" * 256}, token=token
    )
    by_header = await gateway.post(
        CREATE_ORDER, {"input": order_input([(lamp, 1)])}, token=token, headers={"Idempotency-Key": "k" * 256}
    )

    assert codes(by_argument) == codes(by_header) == ["BAD_USER_INPUT"]
    assert first_error(by_argument)["extensions"]["field"] == "idempotencyKey"
    assert await order_count(gateway, token) == 0


async def test_products_priced_in_two_currencies_cannot_share_an_order(gateway, shop):
    euros = await product(gateway, shop, currency="EUR")
    dollars = await product(gateway, shop, currency="USD")
    token = await customer(gateway)

    body = await gateway.post(CREATE_ORDER, {"input": order_input([(euros, 1), (dollars, 1)])}, token=token)

    assert codes(body) == ["BAD_USER_INPUT"]
    assert first_error(body)["extensions"]["field"] == "items"
    assert await order_count(gateway, token) == 0


async def test_another_customers_order_is_not_found(gateway, shop):
    lamp = await product(gateway, shop)
    owner = await customer(gateway)
    stranger = await customer(gateway)
    placed = await place(gateway, owner, [(lamp, 1)])

    peek = await gateway.post(ORDER, {"id": placed["id"]}, token=stranger)
    cancel = await gateway.post(CANCEL, {"id": placed["id"]}, token=stranger)
    unknown = await gateway.post(ORDER, {"id": str(uuid.uuid4())}, token=stranger)
    theirs = await gateway.post(MY_ORDERS, {}, token=stranger)

    assert codes(peek) == codes(cancel) == codes(unknown) == ["NOT_FOUND"]
    assert first_error(peek)["message"] == first_error(unknown)["message"]
    assert theirs["data"]["myOrders"]["totalCount"] == 0
    # The stranger's cancel changed nothing: the order goes on to be confirmed.
    assert (await settled(gateway, owner, placed["id"]))["status"] == "CONFIRMED"


async def test_orders_need_a_signed_in_caller_and_the_listing_of_all_an_admin(gateway, shop):
    lamp = await product(gateway, shop)
    token = await customer(gateway)

    anonymous_create = await gateway.post(CREATE_ORDER, {"input": order_input([(lamp, 1)])})
    anonymous_mine = await gateway.post(MY_ORDERS, {})
    forged = await gateway.post(MY_ORDERS, {}, token="not.a.token")
    all_orders = await gateway.post(ORDERS, {}, token=token)
    deliver = await gateway.post(DELIVER, {"id": str(uuid.uuid4())}, token=token)

    assert codes(anonymous_create) == codes(anonymous_mine) == codes(forged) == ["UNAUTHENTICATED"]
    assert codes(all_orders) == codes(deliver) == ["FORBIDDEN"]
    assert await stock(gateway, lamp) == 10


@pytest.mark.parametrize(
    ("variables", "field"),
    [({"first": 0}, "first"), ({"first": 101}, "first"), ({"after": "forged-cursor"}, "after")],
    ids=["first-0", "first-101", "forged-cursor"],
)
async def test_listing_refuses_bad_page_arguments(gateway, variables, field):
    token = await customer(gateway)

    body = await gateway.post(MY_ORDERS, variables, token=token)

    assert codes(body) == ["BAD_USER_INPUT"]
    assert first_error(body)["extensions"]["field"] == field


async def test_my_orders_pages_newest_first_and_admins_filter_every_order_by_status(gateway, shop):
    lamp = await product(gateway, shop, stock=10)
    token = await customer(gateway)
    placed = [await place(gateway, token, [(lamp, 1)]) for _ in range(3)]
    await gateway.post(CANCEL, {"id": placed[0]["id"]}, token=token)

    first_page = (await gateway.post(MY_ORDERS, {"first": 2}, token=token))["data"]["myOrders"]
    second_page = (
        await gateway.post(MY_ORDERS, {"first": 2, "after": first_page["pageInfo"]["endCursor"]}, token=token)
    )["data"]["myOrders"]
    cancelled = (await gateway.post(ORDERS, {"first": 100, "status": "CANCELLED"}, token=shop["admin"]))[
        "data"
    ]["orders"]

    ids = [e["node"]["id"] for e in first_page["edges"] + second_page["edges"]]
    assert ids == [o["id"] for o in reversed(placed)]
    assert first_page["totalCount"] == 3
    assert (first_page["pageInfo"]["hasNextPage"], second_page["pageInfo"]["hasNextPage"]) == (True, False)
    assert placed[0]["id"] in {e["node"]["id"] for e in cancelled["edges"]}
    assert all(e["node"]["status"] == "CANCELLED" for e in cancelled["edges"])


@pytest.mark.parametrize(
    "document", [ORDER, CANCEL, SHIP, DELIVER], ids=["order", "cancel", "ship", "deliver"]
)
async def test_a_malformed_order_id_is_bad_input_naming_the_argument(gateway, shop, document):
    body = await gateway.post(document, {"id": "1' OR '1'='1"}, token=shop["admin"])

    assert codes(body) == ["BAD_USER_INPUT"]
    assert first_error(body)["extensions"]["field"] == "id"
