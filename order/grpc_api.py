"""OrderService servicer: proto in, use case, proto out. Errors are mapped by the interceptor."""

from __future__ import annotations

import grpc

from ecommerce.order.v1 import order_pb2, order_pb2_grpc
from order import convert
from order.placing import LineRequest, PlaceOrder
from order.service import OrderService
from servicekit.context import current_caller
from servicekit.postal import ADDRESS_FIELDS

SERVICE_NAME = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, service: OrderService) -> None:
        self.service = service

    async def CreateOrder(
        self, request: order_pb2.CreateOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.CreateOrderResponse:
        address = request.shipping_address
        placed = await self.service.create_order(
            current_caller(),
            PlaceOrder(
                items=[LineRequest(i.product_id, i.quantity, i.variant_id) for i in request.items],
                payment_token=request.payment_token,
                shipping_address={name: getattr(address, name) for name, _, _ in ADDRESS_FIELDS},
                idempotency_key=request.idempotency_key,
                wait_seconds=request.wait_seconds,
            ),
            time_left=context.time_remaining(),
        )
        return order_pb2.CreateOrderResponse(
            order=convert.order_to_proto(placed.order), idempotent_replay=placed.replay
        )

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.GetOrderResponse:
        order = await self.service.get_order(current_caller(), order_id=request.order_id)
        return order_pb2.GetOrderResponse(order=convert.order_to_proto(order))

    async def ListMyOrders(
        self, request: order_pb2.ListMyOrdersRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.ListMyOrdersResponse:
        page = await self.service.list_my_orders(
            current_caller(), page_size=request.page_size, page_token=request.page_token
        )
        return convert.page_to_proto(page, order_pb2.ListMyOrdersResponse())

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.ListOrdersResponse:
        page = await self.service.list_orders(
            current_caller(),
            status=convert.status_filter(request.status),
            account_id=request.account_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return convert.page_to_proto(page, order_pb2.ListOrdersResponse())

    async def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.CancelOrderResponse:
        order = await self.service.cancel_order(
            current_caller(), order_id=request.order_id, note=request.note
        )
        return order_pb2.CancelOrderResponse(order=convert.order_to_proto(order))

    async def ShipOrder(
        self, request: order_pb2.ShipOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.ShipOrderResponse:
        order = await self.service.ship_order(current_caller(), order_id=request.order_id)
        return order_pb2.ShipOrderResponse(order=convert.order_to_proto(order))

    async def DeliverOrder(
        self, request: order_pb2.DeliverOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.DeliverOrderResponse:
        order = await self.service.deliver_order(current_caller(), order_id=request.order_id)
        return order_pb2.DeliverOrderResponse(order=convert.order_to_proto(order))


def registration(servicer: OrderServicer) -> tuple:
    return (order_pb2_grpc.add_OrderServiceServicer_to_server, servicer)
