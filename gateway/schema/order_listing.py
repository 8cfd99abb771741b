"""The admin's order listing: `orders(filter, sort, first, after)`, filtered by status, account,
e-mail, when placed and a search, sorted by when placed or by total. The order service checks
the values (and names its request fields); errors name the GraphQL arguments."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Annotated

import strawberry

from ecommerce.order.v1 import order_pb2
from gateway.context import Info
from gateway.errors import bad_input
from gateway.schema.common import After, Connection, First, arguments, connection_from, paged
from gateway.schema.order import STATUS_TO_PROTO, Order, OrderStatus
from servicekit.timestamps import to_timestamp

# The order service's request fields, as the arguments that carry them.
FILTER_ARGUMENTS = {
    "status": "filter.status",
    "accountId": "filter.accountId",
    "email": "filter.email",
    "placedAfter": "filter.placedAfter",
    "placedBefore": "filter.placedBefore",
    "search": "filter.search",
}


@strawberry.enum(description="Orders of the admin's order listing; ties by order id.")
class OrderSort(Enum):
    PLACED_AT_DESC = strawberry.enum_value("PLACED_AT_DESC", description="Newest first.")
    PLACED_AT_ASC = strawberry.enum_value("PLACED_AT_ASC", description="Oldest first.")
    TOTAL_DESC = strawberry.enum_value("TOTAL_DESC", description="Largest total first.")
    TOTAL_ASC = strawberry.enum_value("TOTAL_ASC", description="Smallest total first.")


SORT_TO_PROTO = {
    OrderSort.PLACED_AT_DESC: order_pb2.ORDER_SORT_PLACED_AT_DESC,
    OrderSort.PLACED_AT_ASC: order_pb2.ORDER_SORT_PLACED_AT_ASC,
    OrderSort.TOTAL_DESC: order_pb2.ORDER_SORT_TOTAL_DESC,
    OrderSort.TOTAL_ASC: order_pb2.ORDER_SORT_TOTAL_ASC,
}


@strawberry.input(description="Conditions on the order listing; the ones left out do not filter.")
class OrderFilter:
    status: OrderStatus | None = strawberry.field(default=None, description="Only orders in this status.")
    account_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this account's orders."
    )
    email: str | None = strawberry.field(
        default=None, description="Only orders with this e-mail (a guest's), ignoring case."
    )
    placed_after: datetime | None = strawberry.field(
        default=None, description="Placed at or after this time (ISO 8601; UTC when no offset is given)."
    )
    placed_before: datetime | None = strawberry.field(
        default=None, description="Placed before this time; later than `placedAfter`."
    )
    search: str | None = strawberry.field(
        default=None,
        description="Up to 100 characters, matched literally and ignoring case: an order id prefix, or "
        "part of the e-mail, the shipping name, or a line's product name or SKU.",
    )

    def to_proto(self, request: order_pb2.ListOrdersRequest) -> None:
        if self.status is not None:
            request.status = STATUS_TO_PROTO[self.status]
        request.account_id = self.account_id or ""
        request.email = self.email or ""
        request.search = self.search or ""
        if self.placed_after is not None:
            request.placed_after.CopyFrom(to_timestamp(_aware(self.placed_after)))
        if self.placed_before is not None:
            request.placed_before.CopyFrom(to_timestamp(_aware(self.placed_before)))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@strawberry.type
class OrderListQuery:
    @strawberry.field(description="Every order, filtered and sorted (newest first by default). ADMIN only.")
    async def orders(
        self,
        info: Info,
        first: First = 20,
        after: After = None,
        filter: Annotated[
            OrderFilter | None, strawberry.argument(description="Conditions; none: every order.")
        ] = None,
        sort: Annotated[OrderSort, strawberry.argument(description="Order of the listing.")] = (
            OrderSort.PLACED_AT_DESC
        ),
        status: Annotated[
            OrderStatus | None,
            strawberry.argument(description="Only orders in this status (as `filter.status`)."),
        ] = None,
    ) -> Connection[Order]:
        ctx = info.context
        ctx.require_admin()
        filter = filter or OrderFilter()
        if status is not None and filter.status is not None and status != filter.status:
            raise bad_input("status", "differs from filter.status")
        request = order_pb2.ListOrdersRequest(sort=SORT_TO_PROTO[sort])
        if status is not None:
            request.status = STATUS_TO_PROTO[status]
        filter.to_proto(request)
        with arguments(**FILTER_ARGUMENTS):
            response = await ctx.call(ctx.services.order.ListOrders, paged(request, first, after))
        return connection_from(response, response.orders, Order.from_proto)
