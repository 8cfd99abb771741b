"""Carts with product variants: a line is one variant, priced by it; a product with several needs
`variant_id`; checkout orders the variants the cart holds."""

from __future__ import annotations

import uuid

import grpc
import pytest

from ecommerce.events.v1 import inventory_events_pb2
from ecommerce.order.v1 import order_pb2
from servicekit.kafka import unpack
from servicekit.rpc_status import parse_rpc_error
from tests.integration.order.helpers import address, checkout_request, shop_terms, update
from tests.integration.order.test_order_variants import shirt

pytestmark = pytest.mark.usefixtures("orders")


def add(product_id: str, quantity: int = 1, variant_id: str = "") -> dict:
    return {
        "add_line": order_pb2.AddCartLine(product_id=product_id, quantity=quantity, variant_id=variant_id)
    }


async def new_cart(orders) -> str:  # type: ignore[no-untyped-def]
    return (await orders.stub.CreateCart(order_pb2.CreateCartRequest())).cart.token


async def test_two_variants_of_one_product_are_two_lines_each_priced_by_its_variant(orders):
    product, (small, large) = shirt(orders, 2_000, 2_400)
    token = await new_cart(orders)

    await update(orders, token, **add(product, 2, small))
    await update(orders, token, **add(product, 1, large))
    cart = await update(orders, token, **add(product, 1, small))

    lines = sorted((line.variant_id, line.quantity, line.unit_price.amount_minor) for line in cart.lines)
    assert lines == sorted([(small, 3, 2_000), (large, 1, 2_400)])
    assert cart.subtotal.amount_minor == 3 * 2_000 + 2_400


async def test_a_product_with_one_variant_needs_no_variant_id_and_the_line_names_it(orders):
    product, (only,) = shirt(orders, 1_500)
    token = await new_cart(orders)

    cart = await update(orders, token, **add(product, 1))

    assert [(line.variant_id, line.unit_price.amount_minor) for line in cart.lines] == [(only, 1_500)]


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("", "several variants"),  # a multi-variant product without variantId
        ("not-a-uuid", "not a valid variant id"),
        (str(uuid.uuid4()), "not a variant of this product"),
        ("x" * 10_000, "not a valid variant id"),
    ],
    ids=["missing", "malformed", "unknown", "oversized"],
)
async def test_a_bad_or_missing_variant_is_refused_naming_variant_id(orders, variant, message):
    product, _ = shirt(orders, 2_000, 2_400)
    token = await new_cart(orders)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await update(orders, token, **add(product, 1, variant))

    details = parse_rpc_error(raised.value)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, message in v.description) for v in details.violations] == [("variant_id", True)]
    cart = (await orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=token))).cart
    assert list(cart.lines) == []


async def test_a_variant_no_longer_sold_is_a_problem_of_its_line(orders):
    product, (small, large) = shirt(orders, 2_000, 2_400)
    token = await new_cart(orders)
    await update(orders, token, **add(product, 1, large))

    variants = orders.catalog.products[product].variants
    del variants[[v.id for v in variants].index(large)]
    cart = (await orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=token))).cart

    assert [(p.code, p.line_id) for p in cart.problems] == [("PRODUCT_UNAVAILABLE", cart.lines[0].id)]
    assert small != large


async def test_checkout_orders_the_variants_in_the_cart(orders):
    await shop_terms(orders)
    product, (small, large) = shirt(orders, 2_000, 2_400)
    token = await new_cart(orders)
    await update(orders, token, **add(product, 2, small))
    await update(orders, token, **add(product, 1, large))
    await update(orders, token, email="guest@example.com")
    await update(orders, token, shipping_address=address())
    await update(orders, token, shipping_method="standard")

    order = (await orders.stub.Checkout(checkout_request(token))).order

    items = sorted((i.variant_id, i.sku, i.unit_price.amount_minor, i.quantity) for i in order.items)
    assert items == sorted([(small, "TEE-0", 2_000, 2), (large, "TEE-1", 2_400, 1)])
    assert order.subtotal.amount_minor == 6_400
    [reserve] = await orders.bus.wait_for(order.id, "inventory.reserve_stock")
    command = unpack(reserve, inventory_events_pb2.ReserveStock)
    assert sorted(i.variant_id for i in command.lines) == sorted([small, large])


async def test_merging_keeps_the_variants_apart(orders):
    product, (small, large) = shirt(orders, 2_000, 2_400)
    _, customer = orders.token()
    token = await new_cart(orders)
    await update(orders, token, **add(product, 1, small))
    await update(orders, "", customer, **add(product, 1, large))

    merged = (
        await orders.stub.MergeCart(order_pb2.MergeCartRequest(cart_token=token), metadata=customer)
    ).cart

    assert sorted((line.variant_id, line.quantity) for line in merged.lines) == sorted(
        [(small, 1), (large, 1)]
    )
