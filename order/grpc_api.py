"""OrderService servicer: proto in, use case, proto out. Errors are mapped by the interceptor."""

from __future__ import annotations

from ecommerce.order.v1 import order_pb2, order_pb2_grpc
from order import convert, models
from order.service import LineRequest, OrderPage, OrderService, PlaceOrder
from servicekit.context import current_caller

SERVICE_NAME = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name
ADDRESS_FIELDS = ("name", "line1", "line2", "city", "region", "postal_code", "country")


def order_to_proto(order: models.Order) -> order_pb2.Order:
    return order_pb2.Order(
        id=str(order.id),
        account_id=str(order.account_id),
        status=convert.status_proto(order.status),
        cancellation_reason=convert.reason_proto(order.cancellation_reason),
        items=convert.items_to_proto(order),
        total=convert.money(order.total_minor, order.currency),
        payment_id=order.payment_id or "",
        history=[
            order_pb2.StatusChange(
                status=convert.status_proto(entry.status),
                at=convert.timestamp(entry.at),
                reason=entry.reason,
                changed_by=entry.changed_by or "",
            )
            for entry in order.history
        ],
        shipping_address=convert.address_to_proto(order),
        created_at=convert.timestamp(order.created_at),
        updated_at=convert.timestamp(order.updated_at),
    )


def _page(page: OrderPage) -> dict:
    return {
        "orders": [order_to_proto(o) for o in page.orders],
        "cursors": page.cursors,
        "next_page_token": page.cursors[-1] if page.cursors else "",
        "has_next_page": page.has_next_page,
        "total_count": page.total_count,
    }


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, service: OrderService) -> None:
        self.service = service

    async def CreateOrder(self, request, context):  # type: ignore[no-untyped-def]
        address = request.shipping_address
        placed = await self.service.create_order(
            current_caller(),
            PlaceOrder(
                items=[LineRequest(i.product_id, i.quantity) for i in request.items],
                payment_token=request.payment_token,
                shipping_address={name: getattr(address, name) for name in ADDRESS_FIELDS},
                idempotency_key=request.idempotency_key,
            ),
        )
        return order_pb2.CreateOrderResponse(
            order=order_to_proto(placed.order), idempotent_replay=placed.replay
        )

    async def GetOrder(self, request, context):  # type: ignore[no-untyped-def]
        order = await self.service.get_order(current_caller(), order_id=request.order_id)
        return order_pb2.GetOrderResponse(order=order_to_proto(order))

    async def ListMyOrders(self, request, context):  # type: ignore[no-untyped-def]
        page = await self.service.list_my_orders(
            current_caller(), page_size=request.page_size, page_token=request.page_token
        )
        return order_pb2.ListMyOrdersResponse(**_page(page))

    async def ListOrders(self, request, context):  # type: ignore[no-untyped-def]
        status = ""
        if request.status != order_pb2.ORDER_STATUS_UNSPECIFIED:
            known = convert.STATUS_FROM_PROTO.get(request.status)
            status = known.value if known is not None else str(request.status)
        page = await self.service.list_orders(
            current_caller(),
            status=status,
            account_id=request.account_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return order_pb2.ListOrdersResponse(**_page(page))

    async def CancelOrder(self, request, context):  # type: ignore[no-untyped-def]
        order = await self.service.cancel_order(
            current_caller(), order_id=request.order_id, note=request.note
        )
        return order_pb2.CancelOrderResponse(order=order_to_proto(order))

    async def ShipOrder(self, request, context):  # type: ignore[no-untyped-def]
        order = await self.service.ship_order(current_caller(), order_id=request.order_id)
        return order_pb2.ShipOrderResponse(order=order_to_proto(order))

    async def DeliverOrder(self, request, context):  # type: ignore[no-untyped-def]
        order = await self.service.deliver_order(current_caller(), order_id=request.order_id)
        return order_pb2.DeliverOrderResponse(order=order_to_proto(order))


def registration(servicer: OrderServicer) -> tuple:
    return (order_pb2_grpc.add_OrderServiceServicer_to_server, servicer)
