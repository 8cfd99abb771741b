"""Requests and checks the order service's integration tests share."""

from __future__ import annotations

from typing import Any

import grpc

from ecommerce.order.v1 import order_pb2
from servicekit.rpc_status import parse_rpc_error


def address(**overrides: str) -> order_pb2.ShippingAddress:
    values = {
        "name": "Ada Lovelace",
        "line1": "12 Analytical Row",
        "city": "London",
        "postal_code": "N1 9GU",
        "country": "GB",
    }
    values.update(overrides)
    return order_pb2.ShippingAddress(**values)


def create_request(
    lines: list[tuple[str, int]],
    *,
    token: str = "tok_visa",
    key: str = "",
    shipping: order_pb2.ShippingAddress | None = None,
    wait_seconds: int = 0,
) -> order_pb2.CreateOrderRequest:
    return order_pb2.CreateOrderRequest(
        items=[order_pb2.CreateOrderItem(product_id=p, quantity=q) for p, q in lines],
        payment_token=token,
        shipping_address=shipping if shipping is not None else address(),
        idempotency_key=key,
        wait_seconds=wait_seconds,
    )


async def rpc_error(call: Any) -> tuple[grpc.StatusCode, list[str]]:
    """The status code and the violated fields of a call that must fail."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        details = parse_rpc_error(error)
        fields = [v.field for v in details.violations] or (
            [details.metadata["field"]] if "field" in details.metadata else []
        )
        return error.code(), fields
    raise AssertionError("the call succeeded")


# -- carts -------------------------------------------------------------------------------------------


ADMIN_ROLE = "ADMIN"


async def shop_terms(orders: Any, *, coupon: order_pb2.CreateCouponRequest | None = None) -> None:
    """Two shipping methods (one free over 50.00), GB's 20% tax and, if given, a coupon."""
    _, admin = orders.token(role=ADMIN_ROLE)
    await orders.stub.CreateShippingMethod(
        order_pb2.CreateShippingMethodRequest(
            code="standard", name="Standard", price="4.90", currency="EUR", free_over="50.00"
        ),
        metadata=admin,
    )
    await orders.stub.CreateShippingMethod(
        order_pb2.CreateShippingMethodRequest(
            code="express", name="Express", price="12.00", currency="EUR", countries=["GB", "DE"]
        ),
        metadata=admin,
    )
    await orders.stub.SetTaxRate(order_pb2.SetTaxRateRequest(country="GB", rate="20"), metadata=admin)
    if coupon is not None:
        await orders.stub.CreateCoupon(coupon, metadata=admin)


async def guest_cart(
    orders: Any,
    lines: list[tuple[str, int]],
    *,
    email: str = "guest@example.com",
    method: str = "standard",
    coupon: str = "",
) -> str:
    """A guest cart with these lines, an e-mail, a GB address and a shipping method; its token."""
    cart = (await orders.stub.CreateCart(order_pb2.CreateCartRequest())).cart
    token = cart.token
    for product_id, quantity in lines:
        await update(orders, token, add_line=order_pb2.AddCartLine(product_id=product_id, quantity=quantity))
    if email:
        await update(orders, token, email=email)
    await update(orders, token, shipping_address=address())
    if method:
        await update(orders, token, shipping_method=method)
    if coupon:
        await update(orders, token, coupon_code=coupon)
    return token


async def update(orders: Any, token: str, metadata: Any = None, **change: Any) -> order_pb2.Cart:
    request = order_pb2.UpdateCartRequest(cart_token=token, **change)
    return (await orders.stub.UpdateCart(request, metadata=metadata)).cart


def checkout_request(token: str, **fields: Any) -> order_pb2.CheckoutRequest:
    return order_pb2.CheckoutRequest(
        cart_token=token, payment_token=fields.pop("payment_token", "tok_visa"), **fields
    )
