"""OrderService servicer: proto in, use case, proto out. Errors are mapped by the interceptor."""

from __future__ import annotations

import grpc

from ecommerce.order.v1 import order_pb2, order_pb2_grpc
from order import cart_convert, convert
from order.checkout import CheckoutRequest
from order.listing import OrderFilter
from order.placing import LineRequest, PlaceOrder
from order.service import OrderService
from order.shop import NewCoupon, NewShippingMethod
from servicekit.context import current_caller
from servicekit.grpc_server import Registration
from servicekit.postal import address_fields
from servicekit.timestamps import from_timestamp

SERVICE_NAME = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, service: OrderService) -> None:
        self.service = service

    async def CreateOrder(
        self, request: order_pb2.CreateOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.CreateOrderResponse:
        placed = await self.service.create_order(
            current_caller(),
            PlaceOrder(
                items=[LineRequest(i.product_id, i.quantity, i.variant_id) for i in request.items],
                payment_token=request.payment_token,
                shipping_address=address_fields(request.shipping_address),
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
        return convert.page_to_proto(page, order_pb2.ListMyOrdersResponse)

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.ListOrdersResponse:
        page = await self.service.list_orders(
            current_caller(),
            page_size=request.page_size,
            page_token=request.page_token,
            filter=OrderFilter(
                status=convert.status_filter(request.status),
                account_id=request.account_id,
                email=request.email,
                placed_after=from_timestamp(request.placed_after)
                if request.HasField("placed_after")
                else None,
                placed_before=(
                    from_timestamp(request.placed_before) if request.HasField("placed_before") else None
                ),
                search=request.search,
            ),
            sort=convert.sort_filter(request.sort),
        )
        return convert.page_to_proto(page, order_pb2.ListOrdersResponse)

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

    # -- carts -------------------------------------------------------------------------------

    async def CreateCart(
        self, request: order_pb2.CreateCartRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.CreateCartResponse:
        view = await self.service.carts.create(current_caller())
        return order_pb2.CreateCartResponse(cart=cart_convert.cart_to_proto(view))

    async def GetCart(
        self, request: order_pb2.GetCartRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.GetCartResponse:
        view = await self.service.carts.get(current_caller(), request.cart_token)
        return order_pb2.GetCartResponse(cart=cart_convert.cart_to_proto(view))

    async def UpdateCart(
        self, request: order_pb2.UpdateCartRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.UpdateCartResponse:
        change = cart_convert.change_from_proto(request)
        view = await self.service.carts.update(current_caller(), request.cart_token, change)
        return order_pb2.UpdateCartResponse(cart=cart_convert.cart_to_proto(view))

    async def MergeCart(
        self, request: order_pb2.MergeCartRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.MergeCartResponse:
        view = await self.service.carts.merge(current_caller(), request.cart_token)
        return order_pb2.MergeCartResponse(cart=cart_convert.cart_to_proto(view))

    async def Checkout(
        self, request: order_pb2.CheckoutRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.CheckoutResponse:
        placed = await self.service.check_out(
            current_caller(),
            CheckoutRequest(
                cart_token=request.cart_token,
                payment_token=request.payment_token,
                idempotency_key=request.idempotency_key,
                wait_seconds=request.wait_seconds,
            ),
            time_left=context.time_remaining(),
        )
        return order_pb2.CheckoutResponse(
            order=convert.order_to_proto(placed.order), idempotent_replay=placed.replay
        )

    async def GetGuestOrder(
        self, request: order_pb2.GetGuestOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.GetGuestOrderResponse:
        order = await self.service.get_guest_order(order_id=request.order_id, email=request.email)
        return order_pb2.GetGuestOrderResponse(order=convert.order_to_proto(order))

    # -- the shop's pricing terms ------------------------------------------------------------

    async def ListShippingMethods(
        self, request: order_pb2.ListShippingMethodsRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.ListShippingMethodsResponse:
        methods = await self.service.shop.shipping_methods(request.country)
        return order_pb2.ListShippingMethodsResponse(
            shipping_methods=[cart_convert.method_to_proto(m) for m in methods]
        )

    async def CreateShippingMethod(
        self, request: order_pb2.CreateShippingMethodRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.CreateShippingMethodResponse:
        method = await self.service.shop.create_shipping_method(
            current_caller(),
            NewShippingMethod(
                code=request.code,
                name=request.name,
                price=request.price,
                currency=request.currency,
                free_over=request.free_over,
                countries=tuple(request.countries),
            ),
        )
        return order_pb2.CreateShippingMethodResponse(shipping_method=cart_convert.method_to_proto(method))

    async def SetTaxRate(
        self, request: order_pb2.SetTaxRateRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.SetTaxRateResponse:
        rate = await self.service.shop.set_tax_rate(
            current_caller(), country=request.country, rate=request.rate
        )
        return order_pb2.SetTaxRateResponse(tax_rate=cart_convert.tax_rate_to_proto(rate))

    async def ListTaxRates(
        self, request: order_pb2.ListTaxRatesRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.ListTaxRatesResponse:
        rates = await self.service.shop.tax_rates(current_caller())
        return order_pb2.ListTaxRatesResponse(tax_rates=[cart_convert.tax_rate_to_proto(r) for r in rates])

    async def CreateCoupon(
        self, request: order_pb2.CreateCouponRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.CreateCouponResponse:
        coupon = await self.service.shop.create_coupon(
            current_caller(),
            NewCoupon(
                code=request.code,
                kind=cart_convert.KIND_FROM_PROTO.get(request.kind, ""),
                value=request.value,
                currency=request.currency,
                min_subtotal=request.min_subtotal,
                starts_at=from_timestamp(request.starts_at) if request.HasField("starts_at") else None,
                ends_at=from_timestamp(request.ends_at) if request.HasField("ends_at") else None,
                usage_limit=request.usage_limit,
                per_customer_limit=request.per_customer_limit,
            ),
        )
        return order_pb2.CreateCouponResponse(coupon=cart_convert.coupon_to_proto(coupon))

    async def ListCoupons(
        self, request: order_pb2.ListCouponsRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.ListCouponsResponse:
        page = await self.service.shop.coupons(
            current_caller(), page_size=request.page_size, page_token=request.page_token
        )
        return cart_convert.coupons_to_proto(page)


def registration(servicer: OrderServicer) -> Registration:
    return (order_pb2_grpc.add_OrderServiceServicer_to_server, servicer)
