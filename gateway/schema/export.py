"""`exportMyData`: one JSON document of everything the platform holds about the caller.

The account service answers first, and counts the export against the caller's quota; the orders
(each with its payment) and the notification history are then read page by page from their
services with the caller's own token, so the export shows exactly what the caller may read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import strawberry
from google.protobuf import json_format
from google.protobuf.message import Message

from ecommerce.account.v1 import account_pb2
from ecommerce.notification.v1 import notification_pb2
from ecommerce.order.v1 import order_pb2
from ecommerce.payment.v1 import payment_pb2
from gateway.context import Context, Info

PAGE = 100


def as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


async def every_page(
    ctx: Context, method: Callable[..., Awaitable[Any]], request: Any, items: str
) -> list[Any]:
    """All the items of a paginated listing, following its page tokens."""
    found: list[Any] = []
    request.page_size = PAGE
    while True:
        response = await ctx.call(method, request)
        found.extend(getattr(response, items))
        if not response.has_next_page or not response.next_page_token:
            return found
        request.page_token = response.next_page_token


async def payments_by_order(ctx: Context, order_ids: list[str]) -> dict[str, dict[str, Any]]:
    payments: dict[str, dict[str, Any]] = {}
    for start in range(0, len(order_ids), PAGE):
        response = await ctx.call(
            ctx.services.payment.BatchGetPaymentsByOrder,
            payment_pb2.BatchGetPaymentsByOrderRequest(order_ids=order_ids[start : start + PAGE]),
        )
        payments.update({p.order_id: as_dict(p) for p in response.payments})
    return payments


async def export_document(ctx: Context) -> dict[str, Any]:
    held = await ctx.call(ctx.services.account.ExportMyData, account_pb2.ExportMyDataRequest())
    orders = await every_page(ctx, ctx.services.order.ListMyOrders, order_pb2.ListMyOrdersRequest(), "orders")
    notifications = await every_page(
        ctx,
        ctx.services.notification.ListNotifications,
        notification_pb2.ListNotificationsRequest(),
        "notifications",
    )
    payments = await payments_by_order(ctx, [o.id for o in orders])
    return {
        "exportedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "account": as_dict(held.account),
        "addresses": [as_dict(a) for a in held.addresses],
        "orders": [{**as_dict(o), "payment": payments.get(o.id)} for o in orders],
        "notifications": [as_dict(n) for n in notifications],
    }


@strawberry.type
class ExportMutation:
    @strawberry.mutation(
        description="Everything the platform holds about the signed-in account, as one JSON document: "
        "`account`, `addresses`, `orders` (each with its `payment`) and `notifications`, with "
        "`exportedAt`. At most 5 exports an hour: RATE_LIMITED past that."
    )
    async def export_my_data(self, info: Info) -> str:
        ctx = info.context
        ctx.require_caller()
        return orjson.dumps(await export_document(ctx)).decode()
