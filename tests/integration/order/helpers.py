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
