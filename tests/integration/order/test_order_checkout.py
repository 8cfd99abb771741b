"""Checkout of a cart through the saga: guest and account checkouts, re-pricing and refusals,
idempotency, the coupon's usage limits under concurrency, the use given back on cancellation,
and a guest reading their order by id and e-mail."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from ecommerce.events.v1 import inventory_events_pb2, order_events_pb2
from ecommerce.order.v1 import order_pb2
from servicekit.kafka import unpack
from tests.helpers import eventually
from tests.integration.order.helpers import checkout_request, guest_cart, rpc_error, shop_terms, update

pytestmark = pytest.mark.usefixtures("orders")


def coupon(code: str = "FIVE", **limits: int) -> order_pb2.CreateCouponRequest:
    return order_pb2.CreateCouponRequest(
        code=code, kind=order_pb2.COUPON_KIND_FIXED, value="5", currency="EUR", **limits
    )


async def nothing_placed(orders) -> bool:
    return await orders.scalar("SELECT count(*) FROM orders") == 0 and not await orders.execute(
        "SELECT 1 FROM outbox WHERE topic = 'payment.commands' OR topic = 'inventory.commands'"
    )


async def test_a_guest_checks_out_through_the_saga_with_the_breakdown(orders):
    await shop_terms(orders, coupon=coupon())
    lamp = orders.catalog.add(price_minor=2_000)
    token = await guest_cart(orders, [(lamp, 2)], coupon="five")

    response = await orders.stub.Checkout(checkout_request(token))

    order = response.order
    assert order.account_id == ""
    assert order.email == "guest@example.com"
    assert order.status == order_pb2.ORDER_STATUS_PENDING
    # 40.00 - 5.00 + 4.90 = 39.90, plus 20% (7.98) = 47.88
    amounts = [order.subtotal, order.discount, order.shipping, order.tax, order.total]
    assert [m.amount_minor for m in amounts] == [4_000, 500, 490, 798, 4_788]
    assert (order.shipping_method, order.coupon_code) == ("standard", "FIVE")
    assert await orders.scalar("SELECT used FROM coupons") == 1
    [placed] = await orders.bus.wait_for(order.id, "order.status_changed")
    payload = unpack(placed, order_events_pb2.OrderStatusChanged)
    assert (payload.email, payload.details.tax.amount_minor) == ("guest@example.com", 798)
    # The cart is closed: it is no longer found.
    code, _ = await rpc_error(orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=token)))
    assert code == grpc.StatusCode.NOT_FOUND
    # The guest reads it by id and e-mail (any case), and nobody does with another e-mail.
    read = await orders.stub.GetGuestOrder(
        order_pb2.GetGuestOrderRequest(order_id=order.id, email="GUEST@example.com")
    )
    assert read.order.id == order.id
    for order_id, email in [
        (order.id, "other@example.com"),
        (order.id, ""),
        ("nonsense", "guest@example.com"),
    ]:
        code, _ = await rpc_error(
            orders.stub.GetGuestOrder(order_pb2.GetGuestOrderRequest(order_id=order_id, email=email))
        )
        assert code == grpc.StatusCode.NOT_FOUND


async def test_an_account_order_is_not_a_guest_order(orders):
    await shop_terms(orders)
    pen = orders.catalog.add()
    account_id, metadata = orders.token()
    await update(orders, "", metadata, add_line=order_pb2.AddCartLine(product_id=pen, quantity=1))
    await update(orders, "", metadata, email="me@example.com")
    await update(
        orders,
        "",
        metadata,
        shipping_address=order_pb2.ShippingAddress(
            name="Ada", line1="1 Row", city="London", postal_code="N1", country="GB"
        ),
    )
    await update(orders, "", metadata, shipping_method="standard")
    order = (await orders.stub.Checkout(checkout_request(""), metadata=metadata)).order
    assert order.account_id == account_id
    code, _ = await rpc_error(
        orders.stub.GetGuestOrder(order_pb2.GetGuestOrderRequest(order_id=order.id, email="me@example.com"))
    )
    assert code == grpc.StatusCode.NOT_FOUND
    # The account's next cart is a new, empty one.
    cart = (await orders.stub.GetCart(order_pb2.GetCartRequest(), metadata=metadata)).cart
    assert list(cart.lines) == []


async def test_an_account_that_never_opened_a_cart_checks_out_an_empty_one_and_is_refused(orders):
    await shop_terms(orders)
    _, metadata = orders.token()
    code, fields = await rpc_error(orders.stub.Checkout(checkout_request(""), metadata=metadata))
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["cart_token"])
    assert await nothing_placed(orders)


async def test_checkout_refuses_a_price_changed_since_it_was_shown(orders):
    await shop_terms(orders)
    lamp = orders.catalog.add(price_minor=1_000)
    token = await guest_cart(orders, [(lamp, 1)])
    orders.catalog.products[lamp].price.amount_minor = 1_100

    code, fields = await rpc_error(orders.stub.Checkout(checkout_request(token)))

    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["cart_token"])
    assert await nothing_placed(orders)
    # Now shown, the new price is checked out.
    order = (await orders.stub.Checkout(checkout_request(token))).order
    assert order.subtotal.amount_minor == 1_100


@pytest.mark.parametrize("what", ["archived", "out_of_stock", "coupon_expired"])
async def test_checkout_refuses_what_no_longer_holds(orders, what):
    await shop_terms(orders, coupon=coupon())
    lamp = orders.catalog.add(price_minor=1_000)
    token = await guest_cart(orders, [(lamp, 2)], coupon="FIVE")
    if what == "archived":
        orders.catalog.products[lamp].archived = True
    elif what == "out_of_stock":
        orders.catalog.products[lamp].stock = 1
    else:
        await orders.execute("UPDATE coupons SET ends_at = now() - interval '1 second'")
    code, fields = await rpc_error(orders.stub.Checkout(checkout_request(token)))
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["cart_token"])
    assert await nothing_placed(orders)
    problems = (await orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=token))).cart.problems
    expected = {
        "archived": "PRODUCT_ARCHIVED",
        "out_of_stock": "OUT_OF_STOCK",
        "coupon_expired": "COUPON_INVALID",
    }
    assert expected[what] in {p.code for p in problems}


async def test_a_guest_checkout_needs_an_email_an_address_method_and_a_known_payment_token(orders):
    await shop_terms(orders)
    pen = orders.catalog.add()
    no_email = await guest_cart(orders, [(pen, 1)], email="")
    no_method = await guest_cart(orders, [(pen, 1)], method="")
    empty = await guest_cart(orders, [])
    for token in (no_email, no_method, empty):
        assert await rpc_error(orders.stub.Checkout(checkout_request(token))) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            ["cart_token"],
        )
    ok = await guest_cart(orders, [(pen, 1)])
    for bad, field in [("", "payment_token"), ("tok_unknown", "payment_token"), ("x" * 300, "payment_token")]:
        assert await rpc_error(orders.stub.Checkout(checkout_request(ok, payment_token=bad))) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            [field],
        )
    for extra, field in [
        ({"wait_seconds": 11}, "wait_seconds"),
        ({"idempotency_key": "k" * 256}, "idempotency_key"),
    ]:
        assert await rpc_error(orders.stub.Checkout(checkout_request(ok, **extra))) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            [field],
        )
    code, _ = await rpc_error(orders.stub.Checkout(checkout_request("cart_someone_elses")))
    assert code == grpc.StatusCode.NOT_FOUND
    assert await nothing_placed(orders)


async def test_a_retry_with_the_same_key_answers_with_the_same_order(orders):
    await shop_terms(orders)
    pen = orders.catalog.add()
    token = await guest_cart(orders, [(pen, 1)])
    first = await orders.stub.Checkout(checkout_request(token, idempotency_key="k1"))
    again = await orders.stub.Checkout(checkout_request(token, idempotency_key="k1"))
    assert (again.order.id, again.idempotent_replay) == (first.order.id, True)
    code, _ = await rpc_error(
        orders.stub.Checkout(checkout_request(token, idempotency_key="k1", payment_token="tok_timeout"))
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS
    code, _ = await rpc_error(orders.stub.Checkout(checkout_request(token)))
    assert code == grpc.StatusCode.NOT_FOUND
    assert await orders.scalar("SELECT count(*) FROM orders") == 1


async def test_checkout_waits_for_the_saga_like_create_order(orders):
    await shop_terms(orders)
    pen = orders.catalog.add()
    token = await guest_cart(orders, [(pen, 1)])
    call = asyncio.ensure_future(orders.stub.Checkout(checkout_request(token, wait_seconds=10)))
    order_id = await eventually(lambda: orders.scalar("SELECT id::text FROM orders"), what="the order")
    await orders.bus.wait_for(order_id, "inventory.reserve_stock")
    await orders.bus.reply(
        "inventory.stock_rejected", order_id, inventory_events_pb2.StockRejected(order_id=order_id)
    )
    response = await call
    assert response.order.status == order_pb2.ORDER_STATUS_CANCELLED


async def test_twenty_checkouts_race_for_a_five_use_coupon_and_exactly_five_win(orders):
    await shop_terms(orders, coupon=coupon("RACE", usage_limit=5))
    pen = orders.catalog.add(price_minor=2_000)
    tokens = [
        await guest_cart(orders, [(pen, 1)], email=f"g{i}@example.com", coupon="RACE") for i in range(20)
    ]

    results = await asyncio.gather(
        *(orders.stub.Checkout(checkout_request(t)) for t in tokens), return_exceptions=True
    )

    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 5
    assert all(
        isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.INVALID_ARGUMENT for e in lost
    )
    assert all(r.order.coupon_code == "RACE" for r in won)
    assert await orders.scalar("SELECT count(*) FROM orders") == 5
    assert await orders.scalar("SELECT used FROM coupons") == 5
    assert await orders.scalar("SELECT count(*) FROM outbox WHERE topic = 'inventory.commands'") == 5


async def test_the_per_customer_limit_holds(orders):
    await shop_terms(orders, coupon=coupon("ONCE", per_customer_limit=1))
    pen = orders.catalog.add(price_minor=2_000)
    first = await guest_cart(orders, [(pen, 1)], email="same@example.com", coupon="ONCE")
    second = await guest_cart(orders, [(pen, 1)], email="SAME@example.com", coupon="ONCE")
    results = await asyncio.gather(
        orders.stub.Checkout(checkout_request(first)),
        orders.stub.Checkout(checkout_request(second)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert await orders.scalar("SELECT count(*) FROM coupon_uses") == 1


async def test_a_cancelled_order_gives_its_coupon_use_back(orders):
    await shop_terms(orders, coupon=coupon("ONLY", usage_limit=1))
    pen = orders.catalog.add(price_minor=2_000)
    _, metadata = orders.token()
    for change in (
        {"add_line": order_pb2.AddCartLine(product_id=pen, quantity=1)},
        {
            "shipping_address": order_pb2.ShippingAddress(
                name="A", line1="1 Row", city="L", postal_code="N1", country="GB"
            )
        },
        {"shipping_method": "standard"},
        {"coupon_code": "ONLY"},
    ):
        await update(orders, "", metadata, **change)
    order = (await orders.stub.Checkout(checkout_request(""), metadata=metadata)).order
    assert await orders.scalar("SELECT used FROM coupons") == 1
    # Used up: another shopper's cart shows it no longer applies, and its checkout is refused.
    other = await guest_cart(orders, [(pen, 1)], email="other@example.com", coupon="ONLY")
    shown = (await orders.stub.GetCart(order_pb2.GetCartRequest(cart_token=other))).cart
    assert "COUPON_INVALID" in {p.code for p in shown.problems}

    await orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=order.id), metadata=metadata)

    assert await orders.scalar("SELECT used FROM coupons") == 0
    assert await orders.scalar("SELECT count(*) FROM coupon_uses") == 0
    again = await guest_cart(orders, [(pen, 1)], email="next@example.com", coupon="ONLY")
    assert (await orders.stub.Checkout(checkout_request(again))).order.coupon_code == "ONLY"


async def test_a_cart_with_nothing_to_pay_is_refused_and_places_nothing(orders):
    """A 100% coupon and free shipping leave a total of 0, and a payment needs an amount."""
    everything = order_pb2.CreateCouponRequest(code="ALL", kind=order_pb2.COUPON_KIND_PERCENT, value="100")
    await shop_terms(orders, coupon=everything)
    _, admin = orders.token(role="ADMIN")
    await orders.stub.CreateShippingMethod(
        order_pb2.CreateShippingMethodRequest(code="pickup", name="Pick-up", price="0", currency="EUR"),
        metadata=admin,
    )
    lamp = orders.catalog.add(price_minor=2_000)
    token = await guest_cart(orders, [(lamp, 1)], method="pickup", coupon="all")

    code, fields = await rpc_error(orders.stub.Checkout(checkout_request(token)))

    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["cart_token"])
    assert await nothing_placed(orders)
    assert await orders.scalar("SELECT used FROM coupons") == 0
