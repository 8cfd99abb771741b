"""Carts against the real order service: guest tokens and account carts, lines and their
limits, prices from the catalog with shipping, tax and coupons, problems, expiry, bad input and
other shoppers' tokens."""

from __future__ import annotations

import grpc
import pytest

from ecommerce.order.v1 import order_pb2
from tests.helpers import eventually
from tests.integration.order.helpers import ADMIN_ROLE, address, guest_cart, rpc_error, shop_terms, update

pytestmark = pytest.mark.usefixtures("orders")


def add(product_id: str, quantity: int = 1, **more: str) -> dict:
    return {"add_line": order_pb2.AddCartLine(product_id=product_id, quantity=quantity, **more)}


async def test_a_guest_cart_is_priced_with_shipping_tax_and_a_coupon(orders):
    await shop_terms(
        orders,
        coupon=order_pb2.CreateCouponRequest(code="tenoff", kind=order_pb2.COUPON_KIND_PERCENT, value="10"),
    )
    lamp = orders.catalog.add(price_minor=2_000, name="Lamp")
    token = await guest_cart(orders, [(lamp, 2)], coupon="TENOFF")

    cart = (await orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=token))).cart

    assert token.startswith("cart_")
    assert len(token) >= 5 + 32
    assert [
        (line.quantity, line.unit_price.amount_minor, line.line_total.amount_minor) for line in cart.lines
    ] == [(2, 2_000, 4_000)]
    # 40.00 - 4.00 + 4.90 shipping (36.00 is under the free 50.00) = 40.90, plus 20% = 8.18
    amounts = [cart.subtotal, cart.discount, cart.shipping, cart.tax, cart.total]
    assert [m.amount_minor for m in amounts] == [4_000, 400, 490, 818, 4_908]
    assert cart.coupon_code == "TENOFF"
    assert cart.shipping_method.code == "standard"
    assert [m.code for m in cart.available_shipping_methods] == ["standard", "express"]
    assert cart.email == "guest@example.com"
    assert list(cart.problems) == []


async def test_free_shipping_over_the_threshold_and_no_tax_for_a_country_without_a_rate(orders):
    await shop_terms(orders)
    lamp = orders.catalog.add(price_minor=6_000)
    token = await guest_cart(orders, [(lamp, 1)])
    cart = await update(orders, token, shipping_address=address(country="FR"))
    assert (cart.shipping.amount_minor, cart.tax.amount_minor, cart.total.amount_minor) == (0, 0, 6_000)
    # Express does not ship to FR.
    assert [m.code for m in cart.available_shipping_methods] == ["standard"]
    assert await rpc_error(update(orders, token, shipping_method="express")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["shipping_method"],
    )


async def test_a_shop_without_shipping_methods_still_taxes_by_the_address_country(orders):
    _, admin = orders.token(role=ADMIN_ROLE)
    await orders.stub.SetTaxRate(order_pb2.SetTaxRateRequest(country="GB", rate="20"), metadata=admin)
    lamp = orders.catalog.add(price_minor=1_000)
    cart = (await orders.stub.CreateCart(order_pb2.CreateCartRequest())).cart
    await update(orders, cart.token, **add(lamp, 2))
    taxed = await update(orders, cart.token, shipping_address=address(country="GB"))
    assert (taxed.subtotal.amount_minor, taxed.tax.amount_minor, taxed.total.amount_minor) == (
        2_000,
        400,
        2_400,
    )
    assert list(taxed.available_shipping_methods) == []
    untaxed = await update(orders, cart.token, shipping_address=address(country="FR"))
    assert (untaxed.tax.amount_minor, untaxed.total.amount_minor) == (0, 2_000)


async def test_lines_add_up_change_and_go(orders):
    pen = orders.catalog.add(price_minor=150)
    cart = (await orders.stub.CreateCart(order_pb2.CreateCartRequest())).cart
    await update(orders, cart.token, **add(pen, 2))
    cart2 = await update(orders, cart.token, **add(pen, 3))
    assert [line.quantity for line in cart2.lines] == [5]
    line_id = cart2.lines[0].id
    changed = await update(
        orders, cart.token, update_line=order_pb2.UpdateCartLine(line_id=line_id, quantity=7)
    )
    assert changed.total.amount_minor == 1_050
    zero = await update(orders, cart.token, update_line=order_pb2.UpdateCartLine(line_id=line_id, quantity=0))
    assert list(zero.lines) == []
    await update(orders, cart.token, **add(pen))
    again = (await orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=cart.token))).cart
    removed = await update(
        orders, cart.token, remove_line=order_pb2.RemoveCartLine(line_id=again.lines[0].id)
    )
    assert list(removed.lines) == []


async def test_an_account_has_one_cart_without_a_token(orders):
    pen = orders.catalog.add()
    _, metadata = orders.token()
    first = (await orders.stub.GetCart(order_pb2.GetCartRequest(), metadata=metadata)).cart
    await update(orders, "", metadata, **add(pen, 2))
    second = (await orders.stub.GetCart(order_pb2.GetCartRequest(), metadata=metadata)).cart
    assert first.id == second.id
    assert second.token == ""
    assert [line.quantity for line in second.lines] == [2]
    # Another account sees its own, empty cart; a guest has no account cart at all.
    _, other = orders.token()
    assert list((await orders.stub.GetCart(order_pb2.GetCartRequest(), metadata=other)).cart.lines) == []
    code, _ = await rpc_error(orders.stub.GetCart(order_pb2.GetCartRequest()))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_merging_a_guest_cart_into_the_account_cart(orders):
    pen, ink = orders.catalog.add(), orders.catalog.add()
    _, metadata = orders.token()
    await update(orders, "", metadata, **add(pen, 1))
    guest = (await orders.stub.CreateCart(order_pb2.CreateCartRequest())).cart.token
    await update(orders, guest, **add(pen, 2))
    await update(orders, guest, **add(ink, 4))
    await update(orders, guest, email="me@example.com")

    merged = (
        await orders.stub.MergeCart(order_pb2.MergeCartRequest(cart_token=guest), metadata=metadata)
    ).cart

    assert sorted((line.product_id, line.quantity) for line in merged.lines) == sorted([(pen, 3), (ink, 4)])
    assert merged.email == "me@example.com"
    # The guest cart is gone.
    code, _ = await rpc_error(orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=guest)))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_problems_say_what_changed_in_the_catalog(orders):
    await shop_terms(orders)
    lamp, vase, bowl = orders.catalog.add(price_minor=1_000), orders.catalog.add(), orders.catalog.add()
    token = await guest_cart(orders, [(lamp, 1), (vase, 1), (bowl, 5)])
    orders.catalog.products[lamp].price.amount_minor = 1_200
    orders.catalog.products[vase].archived = True
    orders.catalog.products[bowl].stock = 3

    cart = (await orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=token))).cart

    ids = {line.product_id: line.id for line in cart.lines}
    problems = {(p.code, p.line_id) for p in cart.problems}
    assert problems == {
        ("PRICE_CHANGED", ids[lamp]),
        ("PRODUCT_ARCHIVED", ids[vase]),
        ("OUT_OF_STOCK", ids[bowl]),
    }
    # The new price is shown now: it is no longer a change.
    again = (await orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=token))).cart
    assert {p.code for p in again.problems} == {"PRODUCT_ARCHIVED", "OUT_OF_STOCK"}


async def test_a_cart_left_alone_expires(orders):
    pen = orders.catalog.add()
    token = (await orders.stub.CreateCart(order_pb2.CreateCartRequest())).cart.token
    await update(orders, token, **add(pen))
    await orders.execute("UPDATE carts SET expires_at = now() - interval '1 second'")
    code, _ = await rpc_error(orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=token)))
    assert code == grpc.StatusCode.NOT_FOUND
    assert await orders.app.service.carts.sweep_expired() == 1
    assert await orders.scalar("SELECT count(*) FROM cart_lines") == 0


async def test_a_cart_holds_at_most_100_lines_and_1000_units_per_line(orders):
    token = (await orders.stub.CreateCart(order_pb2.CreateCartRequest())).cart.token
    pen = orders.catalog.add()
    await update(orders, token, **add(pen, 1000))
    assert await rpc_error(update(orders, token, **add(pen, 1))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["quantity"],
    )
    cart_id = await orders.scalar("SELECT id FROM carts")
    for _ in range(99):
        await orders.execute(
            "INSERT INTO cart_lines (id, cart_id, product_id, quantity) VALUES (gen_random_uuid(), :c, gen_random_uuid(), 1)",
            c=cart_id,
        )
    one_more = orders.catalog.add()
    assert await rpc_error(update(orders, token, **add(one_more))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["product_id"],
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (add("not-a-uuid"), "product_id"),
        (add("00000000-0000-0000-0000-000000000001"), "product_id"),  # no such product
        ({"add_line": order_pb2.AddCartLine(product_id="P", quantity=0)}, "quantity"),
        ({"add_line": order_pb2.AddCartLine(product_id="P", quantity=1001)}, "quantity"),
        ({"add_line": order_pb2.AddCartLine(product_id="P", quantity=1, variant_id="v1")}, "variant_id"),
        ({"update_line": order_pb2.UpdateCartLine(line_id="x", quantity=1)}, "line_id"),
        ({"email": "not an e-mail"}, "email"),
        ({"email": "a" * 300 + "@example.com"}, "email"),
        ({"shipping_address": address(country="XX")}, "shipping_address.country"),
        ({"shipping_method": "nope"}, "shipping_method"),
        ({"shipping_method": "x" * 5000}, "shipping_method"),
        ({"coupon_code": "NOPE"}, "coupon_code"),
        ({"coupon_code": "\x00" * 100}, "coupon_code"),
    ],
)
async def test_bad_changes_name_their_field_and_change_nothing(orders, change, field):
    pen = orders.catalog.add()
    token = (await orders.stub.CreateCart(order_pb2.CreateCartRequest())).cart.token
    if "add_line" in change and change["add_line"].product_id == "P":
        change["add_line"].product_id = pen
    before = (await orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=token))).cart
    code, fields = await rpc_error(update(orders, token, **change))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in fields
    after = (await orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=token))).cart
    assert after == before


@pytest.mark.parametrize("token", ["cart_unknown", "x" * 5000, "cart_\x00\x01"])
async def test_an_unknown_or_hostile_token_finds_nothing(orders, token):
    code, _ = await rpc_error(orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=token)))
    assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    code, _ = await rpc_error(update(orders, token, email="a@example.com"))
    assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


async def test_another_shoppers_line_cannot_be_touched_through_my_cart(orders):
    pen = orders.catalog.add()
    mine = (await orders.stub.CreateCart(order_pb2.CreateCartRequest())).cart.token
    theirs = (await orders.stub.CreateCart(order_pb2.CreateCartRequest())).cart.token
    their_line = (await update(orders, theirs, **add(pen, 2))).lines[0].id
    code, _ = await rpc_error(
        update(orders, mine, update_line=order_pb2.UpdateCartLine(line_id=their_line, quantity=9))
    )
    assert code == grpc.StatusCode.NOT_FOUND
    cart = (await orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=theirs))).cart
    assert [line.quantity for line in cart.lines] == [2]


async def test_only_an_admin_sets_the_shops_terms(orders):
    _, customer = orders.token()
    calls = [
        orders.stub.CreateShippingMethod(
            order_pb2.CreateShippingMethodRequest(code="x", name="X", price="1", currency="EUR"),
            metadata=customer,
        ),
        orders.stub.SetTaxRate(order_pb2.SetTaxRateRequest(country="DE", rate="19"), metadata=customer),
        orders.stub.CreateCoupon(
            order_pb2.CreateCouponRequest(code="ABC", kind=order_pb2.COUPON_KIND_PERCENT, value="5"),
            metadata=customer,
        ),
        orders.stub.ListCoupons(order_pb2.ListCouponsRequest(), metadata=customer),
    ]
    for call in calls:
        code, _ = await rpc_error(call)
        assert code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (order_pb2.CreateCouponRequest(code="A", kind=order_pb2.COUPON_KIND_PERCENT, value="5"), "code"),
        (order_pb2.CreateCouponRequest(code="ABC", kind=order_pb2.COUPON_KIND_PERCENT, value="101"), "value"),
        (order_pb2.CreateCouponRequest(code="ABC", kind=order_pb2.COUPON_KIND_FIXED, value="5"), "currency"),
        (order_pb2.CreateCouponRequest(code="ABC", value="5"), "kind"),
        (
            order_pb2.CreateCouponRequest(
                code="ABC", kind=order_pb2.COUPON_KIND_FIXED, value="5.001", currency="EUR"
            ),
            "value",
        ),
        (
            order_pb2.CreateCouponRequest(
                code="ABC", kind=order_pb2.COUPON_KIND_PERCENT, value="5", usage_limit=-1
            ),
            "usage_limit",
        ),
    ],
)
async def test_bad_coupons_are_refused(orders, request_, field):
    _, admin = orders.token(role=ADMIN_ROLE)
    code, fields = await rpc_error(orders.stub.CreateCoupon(request_, metadata=admin))
    assert (code, field in fields) == (grpc.StatusCode.INVALID_ARGUMENT, True)


async def test_tax_rates_are_decimal_strings(orders):
    _, admin = orders.token(role=ADMIN_ROLE)
    set_rate = order_pb2.SetTaxRateRequest(country="de", rate="19.00")
    rate = (await orders.stub.SetTaxRate(set_rate, metadata=admin)).tax_rate
    assert (rate.country, rate.rate) == ("DE", "19")
    for bad in ("abc", "-1", "100.5", "NaN", "1.00001"):
        code, fields = await rpc_error(
            orders.stub.SetTaxRate(order_pb2.SetTaxRateRequest(country="DE", rate=bad), metadata=admin)
        )
        assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["rate"])
    listed = await orders.stub.ListTaxRates(order_pb2.ListTaxRatesRequest(), metadata=admin)
    assert [(r.country, r.rate) for r in listed.tax_rates] == [("DE", "19")]


async def test_the_shops_terms_are_remembered_and_any_change_of_them_is_seen(orders):
    """The shipping methods and tax rates are read once while nothing changes them; an admin's
    change is seen by the next cart at once, and a change made by anyone else (another process, an
    operator's SQL) as soon as its announcement (the tables' trigger) is heard."""
    await shop_terms(orders)
    terms = orders.app.service.terms
    lamp = orders.catalog.add(price_minor=1_000)
    token = await guest_cart(orders, [(lamp, 1)])
    reads = terms.reads
    for _ in range(3):
        await update(orders, token, **add(lamp))
    assert terms.reads == reads  # priced four times, the terms read for none of them

    _, admin = orders.token(role=ADMIN_ROLE)
    await orders.stub.SetTaxRate(order_pb2.SetTaxRateRequest(country="GB", rate="10"), metadata=admin)
    cart = (await orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=token))).cart
    assert cart.tax.amount_minor == 449  # 10% of 4 x 10.00 and 4.90 of shipping, at once

    await orders.execute(
        "INSERT INTO shipping_methods (code, name, price_minor, currency, countries) "
        "VALUES ('pickup', 'Pick-up', 0, 'EUR', '{GB}')"
    )
    await orders.execute("UPDATE tax_rates SET rate = 8 WHERE country = 'GB'")

    async def changed_elsewhere_seen() -> bool:
        cart = (await orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=token))).cart
        offered = [m.code for m in cart.available_shipping_methods]
        return offered == ["pickup", "standard", "express"] and cart.tax.amount_minor == 359

    await eventually(changed_elsewhere_seen, what="the terms changed by SQL, heard and read again")
