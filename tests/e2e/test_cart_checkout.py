"""A guest's checkout end to end through GraphQL, on the session's platform: the shop's terms set
by an admin, a cart priced with shipping, tax and a coupon, the order through the saga with
`waitSeconds`, read back with `guestOrder`, and a signed-in shopper's cart merged at login."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from tests.e2e.test_account_graphql import PASSWORD, admin_session, codes, sign_up
from tests.e2e.test_catalog_graphql import new_category, new_product
from tests.e2e.test_notifications import mail_to
from tests.helpers import eventually

CART_FIELDS = """
  id token email couponCode problems { lineId code message }
  lines { id quantity unitPrice { amount currency } lineTotal { amount } product { id } }
  shippingMethod { code } availableShippingMethods { code }
  subtotal { amount } discount { amount } shipping { amount } tax { amount } total { amount currency }
"""
CREATE_CART = f"mutation {{ createCart {{ {CART_FIELDS} }} }}"
ADD = f"""mutation Add($t: String, $p: ID!, $q: Int!) {{
  addToCart(cartToken: $t, productId: $p, quantity: $q) {{ {CART_FIELDS} }} }}"""
EMAIL = (
    f"mutation E($t: String!, $e: String!) {{ setCartEmail(cartToken: $t, email: $e) {{ {CART_FIELDS} }} }}"
)
ADDRESS = f"""mutation A($t: String, $a: ShippingAddressInput!) {{
  setCartShippingAddress(cartToken: $t, address: $a) {{ {CART_FIELDS} }} }}"""
METHOD = f"mutation M($t: String, $c: String!) {{ setCartShippingMethod(cartToken: $t, code: $c) {{ {CART_FIELDS} }} }}"
COUPON = f"mutation C($t: String, $c: String!) {{ applyCoupon(cartToken: $t, code: $c) {{ {CART_FIELDS} }} }}"
CART = f"query Q($t: String!) {{ cart(cartToken: $t) {{ {CART_FIELDS} }} }}"
MY_CART = f"query {{ myCart {{ {CART_FIELDS} }} }}"
CHECKOUT = """mutation Checkout($t: String, $key: String) {
  checkout(cartToken: $t, paymentToken: "tok_visa", idempotencyKey: $key, waitSeconds: 10) {
    id status accountId email shippingMethod couponCode
    subtotal { amount } discount { amount } shipping { amount } tax { amount } total { amount }
  }
}"""
GUEST_ORDER = "query G($id: ID!, $e: String!) { guestOrder(orderId: $id, email: $e) { id status email payment { id } } }"
ADMIN_ORDERS = """query O($f: OrderFilter, $s: OrderSort) {
  orders(filter: $f, sort: $s, first: 5) { totalCount edges { node { id email } } } }"""
LOGIN = """mutation L($e: String!, $p: String!, $t: String) {
  login(email: $e, password: $p, cartToken: $t) { accessToken } }"""
SHIPPING = """mutation S($input: ShippingMethodInput!) { createShippingMethod(input: $input) { code } }"""
TAX = 'mutation T($c: String!) { setTaxRate(country: $c, rate: "20") { country rate } }'
NEW_COUPON = "mutation N($input: CouponInput!) { createCoupon(input: $input) { code used } }"
GB = {
    "name": "Ada Lovelace",
    "line1": "12 Analytical Row",
    "city": "London",
    "postalCode": "N1 9GU",
    "country": "GB",
}


@pytest.fixture(scope="module")
async def terms(gateway) -> dict:
    admin = (await admin_session(gateway))["accessToken"]
    category = await new_category(gateway, admin, "Carts")
    lamp = await new_product(
        gateway, admin, category, name="Cart Lamp", price="20.00", currency="EUR", stock=50
    )
    method = f"e2e-{uuid.uuid4().hex[:8]}"
    coupon = f"E2E{uuid.uuid4().hex[:8]}".upper()
    for query, variables in [
        (SHIPPING, {"input": {"code": method, "name": "Parcel", "price": "4.90", "currency": "EUR"}}),
        (TAX, {"c": "GB"}),
        (NEW_COUPON, {"input": {"code": coupon, "kind": "PERCENT", "value": "10"}}),
    ]:
        body = await gateway.post(query, variables, token=admin)
        assert "errors" not in body, body
    return {"admin": admin, "lamp": lamp["id"], "method": method, "coupon": coupon}


async def ok(gateway, query: str, variables: dict, token: str | None = None) -> dict:
    body = await gateway.post(query, variables, token=token)
    assert "errors" not in body, body
    return next(iter(body["data"].values()))


async def test_a_guest_checks_out_a_cart_and_reads_the_order_by_email(gateway, terms):
    cart = await ok(gateway, CREATE_CART, {})
    token = cart["token"]
    await ok(gateway, ADD, {"t": token, "p": terms["lamp"], "q": 2})
    await ok(gateway, EMAIL, {"t": token, "e": "guest.e2e@example.com"})
    await ok(gateway, ADDRESS, {"t": token, "a": GB})
    await ok(gateway, METHOD, {"t": token, "c": terms["method"]})
    cart = await ok(gateway, COUPON, {"t": token, "c": terms["coupon"].lower()})
    # 40.00 - 4.00 + 4.90 = 40.90, plus 20% = 8.18
    amounts = [cart[k]["amount"] for k in ("subtotal", "discount", "shipping", "tax", "total")]
    assert [Decimal(a) for a in amounts] == [Decimal(x) for x in ("40.00", "4.00", "4.90", "8.18", "49.08")]
    assert cart["problems"] == []

    order = await ok(gateway, CHECKOUT, {"t": token, "key": "guest-1"})

    assert order["status"] == "CONFIRMED"
    assert order["accountId"] is None
    assert (order["email"], order["couponCode"]) == ("guest.e2e@example.com", terms["coupon"])
    assert Decimal(order["total"]["amount"]) == Decimal("49.08")
    again = await ok(gateway, CHECKOUT, {"t": token, "key": "guest-1"})
    assert again["id"] == order["id"]
    read = await ok(gateway, GUEST_ORDER, {"id": order["id"], "e": "guest.e2e@example.com"})
    assert (read["status"], read["payment"]) == ("CONFIRMED", None)
    wrong = await gateway.post(GUEST_ORDER, {"id": order["id"], "e": "someone@example.com"})
    assert codes(wrong) == ["NOT_FOUND"]
    # The checked-out cart is gone; so is any token that is not a cart's.
    assert (await gateway.post(CART, {"t": token}))["data"]["cart"] is None
    assert (await gateway.post(CART, {"t": "cart_" + "x" * 32}))["data"]["cart"] is None


async def test_a_guest_checkout_without_an_email_is_refused_naming_the_cart(gateway, terms):
    token = (await ok(gateway, CREATE_CART, {}))["token"]
    await ok(gateway, ADD, {"t": token, "p": terms["lamp"], "q": 1})
    await ok(gateway, ADDRESS, {"t": token, "a": GB})
    await ok(gateway, METHOD, {"t": token, "c": terms["method"]})
    body = await gateway.post(CHECKOUT, {"t": token})
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "cartToken"
    bad = await gateway.post(ADD, {"t": token, "p": terms["lamp"], "q": 0})
    assert codes(bad) == ["BAD_USER_INPUT"]
    assert bad["errors"][0]["extensions"]["field"] == "quantity"


async def test_signing_in_merges_the_guest_cart_into_the_accounts(gateway, terms):
    email = (await sign_up(gateway))["account"]["email"]
    token = (await ok(gateway, CREATE_CART, {}))["token"]
    await ok(gateway, ADD, {"t": token, "p": terms["lamp"], "q": 3})
    signed_in = await ok(gateway, LOGIN, {"e": email, "p": PASSWORD, "t": token})
    mine = await ok(gateway, MY_CART, {}, token=signed_in["accessToken"])
    assert [(line["product"]["id"], line["quantity"]) for line in mine["lines"]] == [(terms["lamp"], 3)]
    assert mine["token"] == ""
    assert (await gateway.post(CART, {"t": token}))["data"]["cart"] is None


async def test_the_guest_is_mailed_the_confirmation_with_the_breakdown_and_an_admin_finds_the_order(
    gateway, terms
):
    email = f"guest.{uuid.uuid4().hex[:8]}@example.com"
    token = (await ok(gateway, CREATE_CART, {}))["token"]
    await ok(gateway, ADD, {"t": token, "p": terms["lamp"], "q": 2})
    await ok(gateway, EMAIL, {"t": token, "e": email})
    await ok(gateway, ADDRESS, {"t": token, "a": GB})
    await ok(gateway, METHOD, {"t": token, "c": terms["method"]})
    await ok(gateway, COUPON, {"t": token, "c": terms["coupon"]})
    order = await ok(gateway, CHECKOUT, {"t": token})

    async def confirmation() -> list:
        return [m for m in mail_to(gateway, email) if m["Subject"].endswith("is confirmed")]

    [message] = await eventually(confirmation, timeout=60, what="the guest's confirmation e-mail")
    body = message.get_body(preferencelist=("plain",)).get_content()
    for line in ["Subtotal: 40.00 EUR", "Discount: -4.00 EUR", "Shipping: 4.90 EUR", "Tax: 8.18 EUR"]:
        assert line in body
    assert "Total: 49.08 EUR" in body
    assert f"/orders/{order['id']}?email=" in body
    found = await ok(gateway, ADMIN_ORDERS, {"f": {"email": email.upper()}}, token=terms["admin"])
    assert [e["node"]["id"] for e in found["edges"]] == [order["id"]]
    searched = await ok(gateway, ADMIN_ORDERS, {"f": {"search": order["id"][:8]}}, token=terms["admin"])
    assert order["id"] in [e["node"]["id"] for e in searched["edges"]]
    for variables, field in [
        ({"f": {"search": "x" * 101}}, "filter.search"),
        (
            {"f": {"placedAfter": "2025-02-01T00:00:00Z", "placedBefore": "2025-01-01T00:00:00Z"}},
            "filter.placedBefore",
        ),
    ]:
        bad = await gateway.post(ADMIN_ORDERS, variables, token=terms["admin"])
        assert codes(bad) == ["BAD_USER_INPUT"]
        assert bad["errors"][0]["extensions"]["field"] == field
    bad_date = await gateway.post(ADMIN_ORDERS, {"f": {"placedAfter": "yesterday"}}, token=terms["admin"])
    assert codes(bad_date) == ["BAD_USER_INPUT"]
    assert "placedAfter" in bad_date["errors"][0]["message"]
    assert codes(await gateway.post(ADMIN_ORDERS, {}, token=None)) == ["UNAUTHENTICATED"]
