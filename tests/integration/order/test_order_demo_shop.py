"""The demo shop's terms (`ecommerce seed`, and `ecommerce dev` on a first start) against the
real order service: loaded once, a second load adds nothing, an admin's own terms are kept, and
a demo cart is priced with them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ecommerce.order.v1 import order_pb2
from order import demo
from order.__main__ import seed
from tests.integration.order.helpers import ADMIN_ROLE, address, update

pytestmark = pytest.mark.usefixtures("orders")


async def load(orders, **options) -> demo.ShopSeedResult | None:
    return await seed(currency="EUR", database_url=orders.app.runtime.settings.database_url, **options)


async def test_the_demo_shop_is_loaded_on_a_first_start_and_never_again(orders):
    first = await load(orders, only_if_empty=True)
    second = await load(orders, only_if_empty=True)
    again = await load(orders)

    assert first == demo.ShopSeedResult(shipping_methods=2, tax_rates=4, coupons=1)
    assert second is None  # the shop has terms: a later start leaves them alone
    assert again == demo.ShopSeedResult(shipping_methods=0, tax_rates=0, coupons=0)
    _, admin = orders.token(role=ADMIN_ROLE)
    methods = (await orders.stub.ListShippingMethods(order_pb2.ListShippingMethodsRequest())).shipping_methods
    assert [(m.code, m.price.amount_minor, m.price.currency) for m in methods] == [
        ("STANDARD", 490, "EUR"),
        ("EXPRESS", 1490, "EUR"),
    ]
    assert methods[0].free_over.amount_minor == 5000
    assert not methods[1].HasField("free_over")
    us = await orders.stub.ListShippingMethods(order_pb2.ListShippingMethodsRequest(country="US"))
    assert [m.code for m in us.shipping_methods] == ["STANDARD"]
    rates = (await orders.stub.ListTaxRates(order_pb2.ListTaxRatesRequest(), metadata=admin)).tax_rates
    assert {r.country: r.rate for r in rates} == {"DE": "19", "FR": "20", "GB": "20", "US": "0"}
    [coupon] = (await orders.stub.ListCoupons(order_pb2.ListCouponsRequest(), metadata=admin)).coupons
    assert (coupon.code, coupon.kind, coupon.value) == ("WELCOME10", order_pb2.COUPON_KIND_PERCENT, "10")
    assert (coupon.usage_limit, coupon.per_customer_limit, coupon.used) == (1000, 1, 0)
    window = coupon.ends_at.ToDatetime() - coupon.starts_at.ToDatetime()
    assert window == timedelta(days=365)


async def test_a_second_load_keeps_what_an_admin_set(orders):
    _, admin = orders.token(role=ADMIN_ROLE)
    await orders.stub.SetTaxRate(order_pb2.SetTaxRateRequest(country="DE", rate="7"), metadata=admin)

    skipped = await load(orders, only_if_empty=True)
    added = await load(orders)

    assert skipped is None
    assert added == demo.ShopSeedResult(shipping_methods=2, tax_rates=3, coupons=1)
    rates = (await orders.stub.ListTaxRates(order_pb2.ListTaxRatesRequest(), metadata=admin)).tax_rates
    assert {r.country: r.rate for r in rates}["DE"] == "7"


async def test_a_demo_cart_to_germany_is_priced_with_the_demo_terms(orders):
    await load(orders)
    lamp = orders.catalog.add(price_minor=2_000, name="Lamp")
    token = (await orders.stub.CreateCart(order_pb2.CreateCartRequest())).cart.token
    await update(orders, token, add_line=order_pb2.AddCartLine(product_id=lamp, quantity=2))
    await update(orders, token, shipping_address=address(country="DE", postal_code="10115", city="Berlin"))
    await update(orders, token, shipping_method="EXPRESS")

    cart = await update(orders, token, coupon_code="welcome10")

    # 40.00 - 4.00 + 14.90 express = 50.90, plus 19% = 9.67
    amounts = [cart.subtotal, cart.discount, cart.shipping, cart.tax, cart.total]
    assert [m.amount_minor for m in amounts] == [4_000, 400, 1_490, 967, 6_057]
    assert [m.code for m in cart.available_shipping_methods] == ["STANDARD", "EXPRESS"]
    assert list(cart.problems) == []
