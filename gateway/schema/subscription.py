"""Live order status over WebSocket (graphql-transport-ws), fed by `order.events` (gateway.live).

Send the access token in `connection_init`'s payload, `{"Authorization": "Bearer <token>"}` (or
as the handshake's Authorization header). Whether the caller may watch the order is the order
service's answer to GetOrder with the caller's token: the owner and ADMINs may, anyone else gets
NOT_FOUND, as for an unknown id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterator
from typing import Annotated, Any

import strawberry
from google.protobuf.message import Message
from graphql import ExecutionResult as GraphQLExecutionResult
from starlette.requests import Request
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from ecommerce.order.v1 import order_pb2
from gateway.context import Info, request_context
from gateway.errors import ApiError
from gateway.ids import canonical_id
from gateway.loaders import Loaders
from gateway.schema.order import Order

SUBSCRIPTIONS_NEED_A_WEBSOCKET = "BAD_REQUEST"

TERMINAL = frozenset({order_pb2.ORDER_STATUS_DELIVERED, order_pb2.ORDER_STATUS_CANCELLED})
READY_TIMEOUT = 5.0
# A subscription reads the order again this often even without a signal, so that an event lost
# while the hub reconnected delays a transition, never hides it.
RESYNC_SECONDS = 15.0


def as_of(order: order_pb2.Order, index: int) -> order_pb2.Order:
    """The order as it was right after its `index`-th transition."""
    if index >= len(order.history) - 1:
        return order
    entry = order.history[index]
    snapshot = order_pb2.Order()
    snapshot.CopyFrom(order)
    snapshot.status = entry.status
    del snapshot.history[index + 1 :]
    snapshot.updated_at.CopyFrom(entry.at)
    if entry.status != order_pb2.ORDER_STATUS_CANCELLED:
        snapshot.ClearField("cancellation_reason")
    return snapshot


@strawberry.type
class OrderSubscription:
    @strawberry.subscription(
        description="An order's status as it changes. First the transitions it has made so far (each "
        "as the order was right after it), then each new one as it happens; the stream ends after "
        "DELIVERED or CANCELLED. The order's owner and ADMINs only: NOT_FOUND for anyone else and for "
        'an unknown id. Send the token in `connection_init` as `{Authorization: "Bearer <token>"}`. '
        "A guest follows their order without a token by giving its `email` instead."
    )
    async def order_status_changed(
        self,
        info: Info,
        order_id: Annotated[strawberry.ID, strawberry.argument(description="The order to watch.")],
        email: Annotated[
            str | None,
            strawberry.argument(
                description="A guest's order: the e-mail it was placed with (no token needed)."
            ),
        ] = None,
    ) -> AsyncGenerator[Order, None]:
        ctx = info.context
        if email is None:
            ctx.require_caller()
        wanted = canonical_id(order_id, "orderId")
        hub = ctx.order_events
        if hub is None or not await hub.wait_ready(READY_TIMEOUT):
            raise ApiError("live order status is temporarily unavailable", "SERVICE_UNAVAILABLE")
        read: Any = ctx.services.order.GetOrder
        request: Message = order_pb2.GetOrderRequest(order_id=wanted)
        if email is not None:
            read, request = (
                ctx.services.order.GetGuestOrder,
                order_pb2.GetGuestOrderRequest(order_id=wanted, email=email),
            )
        # Listen before the first read, so that no transition falls between the two.
        with hub.subscribe(wanted) as signals:
            order = (await ctx.call(read, request)).order
            seen = 0
            while True:
                for index in range(seen, max(len(order.history), 1)):
                    ctx.loaders = Loaders.for_request(ctx)  # each message reads its nested fields afresh
                    yield Order.from_proto(as_of(order, index))
                seen = max(seen, len(order.history), 1)
                if order.status in TERMINAL:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RESYNC_SECONDS):
                        await signals.get()
                order = (await ctx.call(read, request)).order


class WebSocketSubscriptions(SchemaExtension):
    """Refuses a subscription sent over HTTP (POST or GET) before it runs, with BAD_REQUEST.

    Strawberry would execute it there like a query, and the stream its resolver returns cannot be
    a query's answer: the client would get an INTERNAL error for using the wrong transport.
    """

    def on_execute(self) -> Iterator[None]:
        ctx = self.execution_context
        context = request_context(ctx.context)
        over_http = context is not None and isinstance(context.request, Request)
        if ctx.operation_type == OperationType.SUBSCRIPTION and over_http:
            ctx.result = GraphQLExecutionResult(
                data=None,
                errors=[
                    ApiError(
                        "subscriptions are served over WebSocket (graphql-transport-ws) at /graphql, "
                        "not over HTTP",
                        SUBSCRIPTIONS_NEED_A_WEBSOCKET,
                    )
                ],
            )
        yield
