"""Orders: placing one (idempotently), reading and listing them, cancelling, shipping, delivering.

An order's lines show their product and the order its payment through the request's
DataLoaders (`product_by_id`, `payment_by_order_id`), so a page of orders costs one batch call
per kind, not one call per line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from google.protobuf.message import Message

from ecommerce.order.v1 import order_pb2
from gateway.context import Context, Info
from gateway.errors import bad_input
from gateway.read_models import Money, Payment, to_datetime
from gateway.schema.address import postal_fields, saved_address
from gateway.schema.catalog import Product, load_product
from gateway.schema.common import After, Connection, First, arguments, connection_from, paged
from servicekit.postal import address_fields

IDEMPOTENCY_HEADER = "idempotency-key"
# The order service names its request fields; errors name the GraphQL arguments.
ORDER_ARGUMENTS = {"orderId": "id"}
# The longest `createOrder` wait the order service accepts; it checks the range.
MAX_WAIT_SECONDS = 10


@strawberry.enum(description="Where an order stands. CANCELLED is possible from any status before SHIPPED.")
class OrderStatus(Enum):
    PENDING = strawberry.enum_value("PENDING", description="Placed; stock is being reserved.")
    AWAITING_PAYMENT = strawberry.enum_value(
        "AWAITING_PAYMENT", description="Stock reserved; the payment is being taken."
    )
    CONFIRMED = strawberry.enum_value("CONFIRMED", description="Paid, and its stock is sold to it.")
    SHIPPED = strawberry.enum_value(
        "SHIPPED", description="Handed to the carrier; it can no longer be cancelled."
    )
    DELIVERED = strawberry.enum_value("DELIVERED", description="Arrived.")
    CANCELLED = strawberry.enum_value(
        "CANCELLED", description="Will not be fulfilled; see `cancellationReason`."
    )


@strawberry.enum(description="Why an order was cancelled.")
class CancellationReason(Enum):
    OUT_OF_STOCK = strawberry.enum_value("OUT_OF_STOCK", description="A line could not be reserved.")
    PAYMENT_DECLINED = strawberry.enum_value("PAYMENT_DECLINED", description="The payment was declined.")
    PAYMENT_UNAVAILABLE = strawberry.enum_value(
        "PAYMENT_UNAVAILABLE", description="The payment could not be taken within the retry budget."
    )
    EXPIRED = strawberry.enum_value(
        "EXPIRED", description="The stock reservation expired before the order was paid."
    )
    CUSTOMER_CANCELLED = strawberry.enum_value("CUSTOMER_CANCELLED", description="Cancelled by the customer.")
    ADMIN_CANCELLED = strawberry.enum_value("ADMIN_CANCELLED", description="Cancelled by an administrator.")
    INVENTORY_UNAVAILABLE = strawberry.enum_value(
        "INVENTORY_UNAVAILABLE", description="The inventory did not answer within the retry budget."
    )


STATUS_FROM_PROTO = {
    order_pb2.ORDER_STATUS_PENDING: OrderStatus.PENDING,
    order_pb2.ORDER_STATUS_AWAITING_PAYMENT: OrderStatus.AWAITING_PAYMENT,
    order_pb2.ORDER_STATUS_CONFIRMED: OrderStatus.CONFIRMED,
    order_pb2.ORDER_STATUS_SHIPPED: OrderStatus.SHIPPED,
    order_pb2.ORDER_STATUS_DELIVERED: OrderStatus.DELIVERED,
    order_pb2.ORDER_STATUS_CANCELLED: OrderStatus.CANCELLED,
}
STATUS_TO_PROTO = {v: k for k, v in STATUS_FROM_PROTO.items()}
REASON_FROM_PROTO = {
    order_pb2.CANCELLATION_REASON_OUT_OF_STOCK: CancellationReason.OUT_OF_STOCK,
    order_pb2.CANCELLATION_REASON_PAYMENT_DECLINED: CancellationReason.PAYMENT_DECLINED,
    order_pb2.CANCELLATION_REASON_PAYMENT_UNAVAILABLE: CancellationReason.PAYMENT_UNAVAILABLE,
    order_pb2.CANCELLATION_REASON_EXPIRED: CancellationReason.EXPIRED,
    order_pb2.CANCELLATION_REASON_CUSTOMER_CANCELLED: CancellationReason.CUSTOMER_CANCELLED,
    order_pb2.CANCELLATION_REASON_ADMIN_CANCELLED: CancellationReason.ADMIN_CANCELLED,
    order_pb2.CANCELLATION_REASON_INVENTORY_UNAVAILABLE: CancellationReason.INVENTORY_UNAVAILABLE,
}


@strawberry.type(description="One line of an order, priced from the catalog when the order was placed.")
class OrderItem:
    product_id: strawberry.ID = strawberry.field(description="The product ordered.")
    sku: str = strawberry.field(description="The product's SKU when the order was placed.")
    name: str = strawberry.field(description="The product's name when the order was placed.")
    unit_price: Money = strawberry.field(description="Price of one unit when the order was placed.")
    quantity: int = strawberry.field(description="Units ordered.")
    line_total: Money = strawberry.field(description="`unitPrice` times `quantity`.")
    variant_id: strawberry.ID | None = strawberry.field(
        default=None, description="The product's variant ordered; null for orders placed before variants."
    )

    @strawberry.field(description="The product as it is now; null if it no longer exists.")
    async def product(self, info: Info) -> Product | None:
        return await load_product(info.context, str(self.product_id))

    @classmethod
    def from_proto(cls, message: order_pb2.OrderItem) -> OrderItem:
        return cls(
            product_id=strawberry.ID(message.product_id),
            sku=message.sku,
            name=message.name,
            unit_price=Money.from_proto(message.unit_price),
            quantity=message.quantity,
            line_total=Money.from_proto(message.line_total),
            variant_id=strawberry.ID(message.variant_id) if message.variant_id else None,
        )


@strawberry.type(description="One entry of an order's audit trail: a status it entered.")
class OrderStatusChange:
    status: OrderStatus = strawberry.field(description="The status entered.")
    at: datetime = strawberry.field(description="When.")
    reason: str = strawberry.field(description='Why, for people, e.g. "stock reserved".')
    changed_by: strawberry.ID | None = strawberry.field(
        description="The account that made a manual change (cancel, ship, deliver); null for the saga's."
    )


@strawberry.type(description="Where an order is shipped.")
class ShippingAddress:
    name: str = strawberry.field(description="The recipient.")
    line1: str = strawberry.field(description="Street and number.")
    line2: str | None = strawberry.field(description="More of the address, if any.")
    city: str = strawberry.field(description="City or town.")
    region: str | None = strawberry.field(description="State, province or county, if any.")
    postal_code: str = strawberry.field(description="Postal code.")
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 country code, e.g. DE.")


@strawberry.type(description="An order and the history of its way through stock reservation and payment.")
class Order:
    id: strawberry.ID = strawberry.field(description="Order id (UUID).")
    account_id: strawberry.ID | None = strawberry.field(
        description="The customer who placed it; null for a guest's order."
    )
    email: str | None = strawberry.field(
        description="The guest's e-mail (or the checkout cart's); null for an order placed without one."
    )
    status: OrderStatus = strawberry.field(description="Where the order stands.")
    cancellation_reason: CancellationReason | None = strawberry.field(
        description="Why it was cancelled; null unless status is CANCELLED."
    )
    items: list[OrderItem] = strawberry.field(description="The lines, one per product.")
    subtotal: Money = strawberry.field(description="Sum of the line totals; one currency per order.")
    discount: Money = strawberry.field(description="What the coupon took off.")
    shipping: Money = strawberry.field(description="The shipping method's price.")
    tax: Money = strawberry.field(
        description="The destination's tax on (subtotal - discount + shipping); inside the total either way."
    )
    total: Money = strawberry.field(description="What was charged: subtotal - discount + shipping (+ tax).")
    shipping_method: str | None = strawberry.field(description="The shipping method's code, if any.")
    coupon_code: str | None = strawberry.field(description="The coupon used, if any.")
    history: list[OrderStatusChange] = strawberry.field(
        description="Every status the order entered, oldest first; the first is PENDING."
    )
    shipping_address: ShippingAddress = strawberry.field(description="Where it is shipped.")
    created_at: datetime = strawberry.field(description="When it was placed.")
    updated_at: datetime = strawberry.field(description="When it last changed.")

    @strawberry.field(
        description="The order's payment; null until one was attempted, and null for a guest's order "
        "read with `guestOrder` (its status tells whether it was paid)."
    )
    async def payment(self, info: Info) -> Payment | None:
        if info.context.caller is None:
            # A guest has no token to read payments with, and the gateway holds no credential of
            # its own to read them for it (docs/security.md, "A guest's order link").
            return None
        return await info.context.loaders.payment_by_order_id.load(str(self.id))

    @classmethod
    def from_proto(cls, message: order_pb2.Order) -> Order:
        address = message.shipping_address
        return cls(
            id=strawberry.ID(message.id),
            account_id=strawberry.ID(message.account_id) if message.account_id else None,
            email=message.email or None,
            status=STATUS_FROM_PROTO.get(message.status, OrderStatus.PENDING),
            cancellation_reason=REASON_FROM_PROTO.get(message.cancellation_reason),
            items=[OrderItem.from_proto(item) for item in message.items],
            subtotal=Money.from_proto(message.subtotal),
            discount=Money.from_proto(message.discount),
            shipping=Money.from_proto(message.shipping),
            tax=Money.from_proto(message.tax),
            total=Money.from_proto(message.total),
            shipping_method=message.shipping_method or None,
            coupon_code=message.coupon_code or None,
            history=[
                OrderStatusChange(
                    status=STATUS_FROM_PROTO.get(change.status, OrderStatus.PENDING),
                    at=to_datetime(change.at),
                    reason=change.reason,
                    changed_by=strawberry.ID(change.changed_by) if change.changed_by else None,
                )
                for change in message.history
            ],
            shipping_address=ShippingAddress(**postal_fields(address)),
            created_at=to_datetime(message.created_at),
            updated_at=to_datetime(message.updated_at),
        )


@strawberry.input(description="One line of a new order.")
class OrderLineInput:
    product_id: strawberry.ID = strawberry.field(description="The product to order.")
    quantity: int = strawberry.field(description="Units, 1 to 1,000.")
    variant_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Its variant; may be left out when the product has only one (BAD_USER_INPUT naming "
        "`variantId` when it has several).",
    )


@strawberry.input(description="Where to ship an order.")
class ShippingAddressInput:
    name: str = strawberry.field(description="The recipient, 1 to 100 characters.")
    line1: str = strawberry.field(description="Street and number, at most 200 characters.")
    city: str = strawberry.field(description="City or town, at most 100 characters.")
    postal_code: str = strawberry.field(description="Postal code, at most 20 characters.")
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 country code, e.g. DE.")
    line2: str | None = strawberry.field(default=None, description="More of the address, optional.")
    region: str | None = strawberry.field(default=None, description="State, province or county, optional.")


@strawberry.input(
    description="A new order. Prices, names and the currency come from the catalog, never from the "
    "client. Lines naming the same product are merged into one line with the quantities added up "
    "(the sum must still be at most 1,000)."
)
class CreateOrderInput:
    items: list[OrderLineInput] = strawberry.field(
        description="1 to 50 lines; the same product twice is merged into one line."
    )
    payment_token: str = strawberry.field(
        description='The payment provider\'s card token; the simulated provider knows "tok_visa", '
        '"tok_chargeDeclined", "tok_timeout" and "tok_unavailable".'
    )
    shipping_address: ShippingAddressInput | None = strawberry.field(
        default=None, description="Where to ship the order; or name a saved address with `addressId`."
    )
    address_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Ship to this saved address of the caller's (instead of `shippingAddress`). NOT_FOUND "
        "for an unknown id and another account's alike.",
    )


async def _shipping_address(ctx: Context, input: CreateOrderInput) -> order_pb2.ShippingAddress:
    """The address typed in, or the caller's saved one named by `addressId`: exactly one of them."""
    if (input.shipping_address is None) == (input.address_id is None):
        raise bad_input("shippingAddress", "give either shippingAddress or addressId, not both")
    if input.address_id is not None:
        return await saved_shipping_address(ctx, str(input.address_id))
    assert input.shipping_address is not None
    return address_proto(input.shipping_address)


async def saved_shipping_address(ctx: Context, address_id: str) -> order_pb2.ShippingAddress:
    """The caller's saved address as an order's; NOT_FOUND for another account's."""
    saved = await saved_address(ctx, address_id)
    return order_pb2.ShippingAddress(**address_fields(saved.fields))


def address_proto(address: ShippingAddressInput) -> order_pb2.ShippingAddress:
    return order_pb2.ShippingAddress(**address_fields(address))


def _create_request(
    input: CreateOrderInput, address: order_pb2.ShippingAddress, key: str, wait_seconds: int
) -> order_pb2.CreateOrderRequest:
    return order_pb2.CreateOrderRequest(
        items=[
            order_pb2.CreateOrderItem(
                product_id=str(i.product_id), quantity=i.quantity, variant_id=str(i.variant_id or "")
            )
            for i in input.items
        ],
        payment_token=input.payment_token,
        shipping_address=address,
        idempotency_key=key,
        wait_seconds=wait_seconds,
    )


async def _order_call(ctx: Context, method: Callable[..., Awaitable[Any]], request: Message) -> Order:
    """The order a call about one order returns; its errors name the `id` argument."""
    with arguments(**ORDER_ARGUMENTS):
        response = await ctx.call(method, request)
    return Order.from_proto(response.order)


def idempotency_key_of(info: Info, argument: str | None) -> str:
    """The `idempotencyKey` argument or the `Idempotency-Key` header; both must agree when both are sent."""
    header = info.context.request.headers.get(IDEMPOTENCY_HEADER)
    if argument is not None and header is not None and argument != header:
        raise bad_input("idempotencyKey", "differs from the Idempotency-Key header")
    return argument if argument is not None else header or ""


@strawberry.type
class OrderQuery:
    @strawberry.field(
        description="One order: the caller's own, or any for an ADMIN. NOT_FOUND for an unknown id and "
        "for another customer's order alike."
    )
    async def order(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The order id.")]
    ) -> Order | None:
        ctx = info.context
        ctx.require_caller()
        return await _order_call(
            ctx, ctx.services.order.GetOrder, order_pb2.GetOrderRequest(order_id=str(id))
        )

    @strawberry.field(description="The caller's orders, newest first.")
    async def my_orders(
        self,
        info: Info,
        first: First = 20,
        after: After = None,
    ) -> Connection[Order]:
        ctx = info.context
        ctx.require_caller()
        response = await ctx.call(
            ctx.services.order.ListMyOrders,
            paged(order_pb2.ListMyOrdersRequest(), first, after),
        )
        return connection_from(response, response.orders, Order.from_proto)


@strawberry.type
class OrderMutation:
    @strawberry.mutation(
        description="Place an order. It is returned PENDING; stock reservation and payment follow "
        "(watch `status`), or, with `waitSeconds`, the answer waits for them. With an idempotency "
        "key (the argument or the `Idempotency-Key` header), a retry with the same payload returns "
        "the same order and one with another payload is a CONFLICT. BAD_USER_INPUT names the field: no lines or more than 50, a quantity outside "
        "1-1,000, an unknown or archived product, products in more than one currency, a missing or "
        "unknown payment token, an incomplete address (or both or neither of `shippingAddress` and "
        "`addressId`), a key over 255 characters, `waitSeconds` outside 0-10. NOT_FOUND for an `addressId` "
        "that is not one of the caller's. FORBIDDEN with reason EMAIL_NOT_VERIFIED when the shop requires "
        "a verified e-mail and the caller's is not."
    )
    async def create_order(
        self,
        info: Info,
        input: Annotated[CreateOrderInput, strawberry.argument(description="What to order.")],
        idempotency_key: Annotated[
            str | None,
            strawberry.argument(
                description="Up to 255 characters, unique per order for the caller; makes retries safe."
            ),
        ] = None,
        wait_seconds: Annotated[
            int | None,
            strawberry.argument(
                description="0 to 10. 0 answers at once with the PENDING order. Otherwise the answer "
                "waits until the order is CONFIRMED or CANCELLED, at most this many seconds, and then "
                "returns the order as it is (still PENDING or AWAITING_PAYMENT when the time ran out: "
                "not an error). A retry with the same idempotency key waits the same way. Null is 0."
            ),
        ] = 0,
    ) -> Order:
        ctx = info.context
        ctx.require_caller()
        wait_seconds = wait_seconds or 0
        address = await _shipping_address(ctx, input)
        request = _create_request(input, address, idempotency_key_of(info, idempotency_key), wait_seconds)
        # The call's deadline covers the wait; the service refuses an out-of-range wait at once.
        waited = min(max(wait_seconds, 0), MAX_WAIT_SECONDS)
        response = await ctx.call(
            ctx.services.order.CreateOrder, request, timeout=ctx.settings.grpc_timeout + waited
        )
        return Order.from_proto(response.order)

    @strawberry.mutation(
        description="Cancel an order before it ships: its stock is released and its payment voided, or "
        "refunded if it was CONFIRMED. A cancelled order is returned unchanged. CONFLICT once SHIPPED."
    )
    async def cancel_order(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The order to cancel.")],
        note: Annotated[
            str | None, strawberry.argument(description="Why, for the history; at most 500 characters.")
        ] = None,
    ) -> Order:
        ctx = info.context
        ctx.require_caller()
        return await _order_call(
            ctx,
            ctx.services.order.CancelOrder,
            order_pb2.CancelOrderRequest(order_id=str(id), note=note or ""),
        )

    @strawberry.mutation(
        description="Mark a CONFIRMED order SHIPPED. ADMIN only; CONFLICT from another status."
    )
    async def ship_order(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The order to ship.")]
    ) -> Order:
        ctx = info.context
        ctx.require_admin()
        return await _order_call(
            ctx, ctx.services.order.ShipOrder, order_pb2.ShipOrderRequest(order_id=str(id))
        )

    @strawberry.mutation(
        description="Mark a SHIPPED order DELIVERED. ADMIN only; CONFLICT from another status."
    )
    async def deliver_order(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The order delivered.")],
    ) -> Order:
        ctx = info.context
        ctx.require_admin()
        return await _order_call(
            ctx, ctx.services.order.DeliverOrder, order_pb2.DeliverOrderRequest(order_id=str(id))
        )
