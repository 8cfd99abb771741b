"""Carts and checkout: a guest's cart is addressed by its `cartToken` (a bearer secret), a
signed-in shopper's by their account (the argument omitted). Prices come from the catalog each
time a cart is shown; `checkout` places the order through the same saga as `createOrder`.
The shop's terms (shipping methods, tax rates, coupons) are set by an ADMIN here too.
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
from gateway.errors import ApiError, bad_input
from gateway.read_models import Money, to_datetime
from gateway.schema.address import postal_fields
from gateway.schema.catalog import Product, load_product
from gateway.schema.common import After, Connection, First, arguments, connection_from, paged
from gateway.schema.order import (
    MAX_WAIT_SECONDS,
    Order,
    ShippingAddress,
    ShippingAddressInput,
    address_proto,
    idempotency_key_of,
    saved_shipping_address,
)
from servicekit.timestamps import to_optional_timestamp

# The order service's request fields, as the GraphQL arguments that carry them.
CART_ARGUMENTS = {
    "shippingAddress": "address",
    "shippingMethod": "code",
    "couponCode": "code",
    "addLine": "productId",
}
ADDRESS_PREFIX = "shippingAddress."
CartToken = Annotated[
    str | None,
    strawberry.argument(description="A guest cart's token; omit it for the signed-in account's cart."),
]


@strawberry.type(description="A shipping method: its price, when it is free, and where it ships.")
class ShippingMethod:
    code: str = strawberry.field(description="What `setCartShippingMethod` names it by.")
    name: str = strawberry.field(description="For people.")
    price: Money = strawberry.field(description="What it costs.")
    free_over: Money | None = strawberry.field(
        description="Free when the discounted subtotal reaches this; null: never free."
    )
    countries: list[str] = strawberry.field(
        description="Where it ships (ISO 3166-1 alpha-2); empty: everywhere."
    )

    @classmethod
    def from_proto(cls, message: order_pb2.ShippingMethod) -> ShippingMethod:
        return cls(
            code=message.code,
            name=message.name,
            price=Money.from_proto(message.price),
            free_over=Money.from_proto(message.free_over) if message.HasField("free_over") else None,
            countries=list(message.countries),
        )


@strawberry.type(description="A line of a cart, priced from the catalog now.")
class CartLine:
    id: strawberry.ID = strawberry.field(description="The line (for `updateCartLine`, `removeCartLine`).")
    product_id: strawberry.Private[str]
    variant_id: strawberry.ID | None = strawberry.field(
        description="The product's variant on this line (a line is one variant); null only for a "
        "catalog without variants."
    )
    quantity: int = strawberry.field(description="Units, 1 to 1,000.")
    unit_price: Money = strawberry.field(description="The variant's price of one unit now.")
    line_total: Money = strawberry.field(description="`unitPrice` times `quantity`.")

    @strawberry.field(description="The product.")
    async def product(self, info: Info) -> Product:
        product = await load_product(info.context, self.product_id)
        if product is None:  # gone from the catalog since: the cart's problems say so too
            raise ApiError("this product no longer exists", "NOT_FOUND")
        return product


@strawberry.type(
    description="Why a cart cannot be checked out as it is. Codes: OUT_OF_STOCK, PRICE_CHANGED, "
    "PRODUCT_ARCHIVED, PRODUCT_UNAVAILABLE, CURRENCY_MISMATCH, COUPON_INVALID, SHIPPING_METHOD_UNAVAILABLE."
)
class CartProblem:
    line_id: strawberry.ID | None = strawberry.field(
        description="The line concerned; null for the whole cart."
    )
    code: str = strawberry.field(description="What kind of problem.")
    message: str = strawberry.field(description="For people.")


@strawberry.type(
    description="A shopper's cart. total = subtotal - discount + shipping + tax (the tax is inside "
    "the prices when the shop's catalog prices include it)."
)
class Cart:
    id: strawberry.ID = strawberry.field(description="The cart.")
    token: str = strawberry.field(
        description="A guest cart's bearer token: keep it secret, it is the cart. Empty for an account's cart."
    )
    email: str | None = strawberry.field(description="Where a guest's order e-mails go.")
    lines: list[CartLine] = strawberry.field(description="The lines, oldest first.")
    shipping_address: ShippingAddress | None = strawberry.field(description="Where to ship.")
    shipping_method: ShippingMethod | None = strawberry.field(description="How to ship.")
    coupon_code: str | None = strawberry.field(description="The coupon applied.")
    subtotal: Money = strawberry.field(description="The lines at the catalog's prices.")
    discount: Money = strawberry.field(description="What the coupon takes off.")
    shipping: Money = strawberry.field(description="The shipping method's price (0 once free).")
    tax: Money = strawberry.field(description="The destination's tax on (subtotal - discount + shipping).")
    total: Money = strawberry.field(description="What checkout charges.")
    available_shipping_methods: list[ShippingMethod] = strawberry.field(
        description="The methods that ship this cart to its address."
    )
    problems: list[CartProblem] = strawberry.field(
        description="Why checkout would be refused; empty if none."
    )
    expires_at: datetime = strawberry.field(description="When the cart goes if left alone.")

    @classmethod
    def from_proto(cls, message: order_pb2.Cart) -> Cart:
        return cls(
            id=strawberry.ID(message.id),
            token=message.token,
            email=message.email or None,
            lines=[
                CartLine(
                    id=strawberry.ID(line.id),
                    product_id=line.product_id,
                    variant_id=strawberry.ID(line.variant_id) if line.variant_id else None,
                    quantity=line.quantity,
                    unit_price=Money.from_proto(line.unit_price),
                    line_total=Money.from_proto(line.line_total),
                )
                for line in message.lines
            ],
            shipping_address=ShippingAddress(**postal_fields(message.shipping_address))
            if message.HasField("shipping_address")
            else None,
            shipping_method=ShippingMethod.from_proto(message.shipping_method)
            if message.HasField("shipping_method")
            else None,
            coupon_code=message.coupon_code or None,
            subtotal=Money.from_proto(message.subtotal),
            discount=Money.from_proto(message.discount),
            shipping=Money.from_proto(message.shipping),
            tax=Money.from_proto(message.tax),
            total=Money.from_proto(message.total),
            available_shipping_methods=[
                ShippingMethod.from_proto(m) for m in message.available_shipping_methods
            ],
            problems=[
                CartProblem(
                    line_id=strawberry.ID(p.line_id) if p.line_id else None, code=p.code, message=p.message
                )
                for p in message.problems
            ],
            expires_at=to_datetime(message.expires_at),
        )


@strawberry.type(description="A destination country's tax rate.")
class TaxRate:
    country: str = strawberry.field(description="ISO 3166-1 alpha-2.")
    rate: str = strawberry.field(description='Percent as a decimal string: "20" is 20%.')


@strawberry.enum(description="How a coupon takes its discount.")
class CouponKind(Enum):
    PERCENT = strawberry.enum_value("PERCENT", description="`value` percent of the subtotal.")
    FIXED = strawberry.enum_value("FIXED", description="`value` in `currency`, at most the subtotal.")


KIND_TO_PROTO = {
    CouponKind.PERCENT: order_pb2.COUPON_KIND_PERCENT,
    CouponKind.FIXED: order_pb2.COUPON_KIND_FIXED,
}
KIND_FROM_PROTO = {v: k for k, v in KIND_TO_PROTO.items()}


@strawberry.type(description="A coupon code and its terms.")
class Coupon:
    id: strawberry.ID = strawberry.field(description="The coupon.")
    code: str = strawberry.field(description="Upper case; shoppers may type it in any case.")
    kind: CouponKind = strawberry.field(description="PERCENT or FIXED.")
    value: str = strawberry.field(description="Percent, or an amount in `currency`, as a decimal string.")
    currency: str | None = strawberry.field(description="For FIXED coupons and the minimum subtotal.")
    min_subtotal: Money | None = strawberry.field(description="The least subtotal it applies to.")
    starts_at: datetime | None = strawberry.field(description="Valid from.")
    ends_at: datetime | None = strawberry.field(description="Valid until (exclusive).")
    usage_limit: int | None = strawberry.field(description="Uses in all; null: no limit.")
    per_customer_limit: int | None = strawberry.field(description="Uses per account or guest e-mail.")
    used: int = strawberry.field(description="Uses held by orders not cancelled.")

    @classmethod
    def from_proto(cls, m: order_pb2.Coupon) -> Coupon:
        return cls(
            id=strawberry.ID(m.id),
            code=m.code,
            kind=KIND_FROM_PROTO.get(m.kind, CouponKind.PERCENT),
            value=m.value,
            currency=m.currency or None,
            min_subtotal=Money.from_proto(m.min_subtotal) if m.HasField("min_subtotal") else None,
            starts_at=to_datetime(m.starts_at) if m.HasField("starts_at") else None,
            ends_at=to_datetime(m.ends_at) if m.HasField("ends_at") else None,
            usage_limit=m.usage_limit or None,
            per_customer_limit=m.per_customer_limit or None,
            used=m.used,
        )


@strawberry.input(description="A new shipping method.")
class ShippingMethodInput:
    code: str = strawberry.field(description="1-40 letters, digits, '-' or '_'.")
    name: str = strawberry.field(description="For people, 1-100 characters.")
    price: str = strawberry.field(description='A decimal string, e.g. "4.90".')
    currency: str = strawberry.field(description="ISO 4217.")
    free_over: str | None = strawberry.field(default=None, description="Free from this discounted subtotal.")
    countries: list[str] | None = strawberry.field(
        default=None, description="Where it ships; none: everywhere."
    )


@strawberry.input(description="A new coupon.")
class CouponInput:
    code: str = strawberry.field(description="3-40 letters, digits, '-' or '_'.")
    kind: CouponKind = strawberry.field(description="PERCENT or FIXED.")
    value: str = strawberry.field(description='Percent ("10") or an amount ("5.00") as a decimal string.')
    currency: str | None = strawberry.field(default=None, description="Required for FIXED and minSubtotal.")
    min_subtotal: str | None = strawberry.field(default=None, description="The least subtotal it applies to.")
    starts_at: datetime | None = strawberry.field(default=None, description="Valid from.")
    ends_at: datetime | None = strawberry.field(default=None, description="Valid until (exclusive).")
    usage_limit: int | None = strawberry.field(default=None, description="Uses in all.")
    per_customer_limit: int | None = strawberry.field(default=None, description="Uses per customer.")


async def _cart_call(ctx: Context, method: Callable[..., Awaitable[Any]], request: Message) -> Cart:
    with arguments(**CART_ARGUMENTS):
        response = await ctx.call(method, request)
    return Cart.from_proto(response.cart)


def _for(ctx: Context, token: str | None) -> str:
    """The token to send; without one, the signed-in caller's cart (UNAUTHENTICATED for a guest)."""
    if token is None:
        ctx.require_caller()
    return token or ""


async def change_cart(ctx: Context, token: str | None, **change: object) -> Cart:
    request = order_pb2.UpdateCartRequest(cart_token=_for(ctx, token), **change)  # type: ignore[arg-type]
    return await _cart_call(ctx, ctx.services.order.UpdateCart, request)


@strawberry.type
class CartQuery:
    @strawberry.field(description="A guest cart by its token; null when there is no such open cart.")
    async def cart(
        self, info: Info, cart_token: Annotated[str, strawberry.argument(description="The cart's token.")]
    ) -> Cart | None:
        try:
            return await _cart_call(
                info.context,
                info.context.services.order.GetCart,
                order_pb2.GetCartRequest(cart_token=cart_token),
            )
        except ApiError as error:
            if (error.extensions or {}).get("code") == "NOT_FOUND":
                return None
            raise

    @strawberry.field(description="The signed-in account's cart, created when missing.")
    async def my_cart(self, info: Info) -> Cart:
        ctx = info.context
        ctx.require_caller()
        return await _cart_call(ctx, ctx.services.order.GetCart, order_pb2.GetCartRequest())

    @strawberry.field(description="The shipping methods, or those that ship to `country`.")
    async def shipping_methods(
        self,
        info: Info,
        country: Annotated[str | None, strawberry.argument(description="ISO 3166-1 alpha-2.")] = None,
    ) -> list[ShippingMethod]:
        ctx = info.context
        response = await ctx.call(
            ctx.services.order.ListShippingMethods,
            order_pb2.ListShippingMethodsRequest(country=country or ""),
        )
        return [ShippingMethod.from_proto(m) for m in response.shipping_methods]

    @strawberry.field(
        description="A guest's own order, by its id and the e-mail it was placed with; "
        "NOT_FOUND when they do not match."
    )
    async def guest_order(
        self,
        info: Info,
        order_id: Annotated[strawberry.ID, strawberry.argument(description="The order id.")],
        email: Annotated[str, strawberry.argument(description="The e-mail given at checkout.")],
    ) -> Order | None:
        ctx = info.context
        response = await ctx.call(
            ctx.services.order.GetGuestOrder,
            order_pb2.GetGuestOrderRequest(order_id=str(order_id), email=email),
        )
        return Order.from_proto(response.order)

    @strawberry.field(description="Every tax rate. ADMIN only.")
    async def tax_rates(self, info: Info) -> list[TaxRate]:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(ctx.services.order.ListTaxRates, order_pb2.ListTaxRatesRequest())
        return [TaxRate(country=r.country, rate=r.rate) for r in response.tax_rates]

    @strawberry.field(description="Every coupon, newest first. ADMIN only.")
    async def coupons(self, info: Info, first: First = 20, after: After = None) -> Connection[Coupon]:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.order.ListCoupons, paged(order_pb2.ListCouponsRequest(), first, after)
        )
        return connection_from(response, response.coupons, Coupon.from_proto)


@strawberry.type
class CartMutation:
    @strawberry.mutation(description="A new guest cart; keep its `token`.")
    async def create_cart(self, info: Info) -> Cart:
        ctx = info.context
        return await _cart_call(ctx, ctx.services.order.CreateCart, order_pb2.CreateCartRequest())

    @strawberry.mutation(
        description="Add units of a product (to its line, if the cart has one). At most 100 lines and "
        "1,000 units per line; BAD_USER_INPUT names the argument."
    )
    async def add_to_cart(
        self,
        info: Info,
        product_id: Annotated[strawberry.ID, strawberry.argument(description="The product.")],
        quantity: Annotated[int, strawberry.argument(description="Units to add, 1 to 1,000.")],
        cart_token: CartToken = None,
        variant_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="The variant to add; may be left out for a product with one variant, and "
                "is BAD_USER_INPUT naming `variantId` for a product with several."
            ),
        ] = None,
    ) -> Cart:
        line = order_pb2.AddCartLine(
            product_id=str(product_id), quantity=quantity, variant_id=str(variant_id or "")
        )
        return await change_cart(info.context, cart_token, add_line=line)

    @strawberry.mutation(description="Set a line's quantity; 0 removes it.")
    async def update_cart_line(
        self,
        info: Info,
        line_id: Annotated[strawberry.ID, strawberry.argument(description="The line.")],
        quantity: Annotated[int, strawberry.argument(description="0 to 1,000.")],
        cart_token: CartToken = None,
    ) -> Cart:
        line = order_pb2.UpdateCartLine(line_id=str(line_id), quantity=quantity)
        return await change_cart(info.context, cart_token, update_line=line)

    @strawberry.mutation(description="Remove a line.")
    async def remove_cart_line(
        self,
        info: Info,
        line_id: Annotated[strawberry.ID, strawberry.argument(description="The line.")],
        cart_token: CartToken = None,
    ) -> Cart:
        return await change_cart(
            info.context, cart_token, remove_line=order_pb2.RemoveCartLine(line_id=str(line_id))
        )

    @strawberry.mutation(description="The e-mail a guest's order e-mails go to (needed to check out).")
    async def set_cart_email(
        self,
        info: Info,
        cart_token: Annotated[str, strawberry.argument(description="The guest cart's token.")],
        email: Annotated[str, strawberry.argument(description="An e-mail address.")],
    ) -> Cart:
        return await change_cart(info.context, cart_token, email=email)

    @strawberry.mutation(description="Where to ship: an address, or (signed in) a saved one by `addressId`.")
    async def set_cart_shipping_address(
        self,
        info: Info,
        cart_token: CartToken = None,
        address: Annotated[
            ShippingAddressInput | None, strawberry.argument(description="The address.")
        ] = None,
        address_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="A saved address of the caller's instead.")
        ] = None,
    ) -> Cart:
        ctx = info.context
        if (address is None) == (address_id is None):
            raise bad_input("address", "give either address or addressId")
        if address_id is not None:
            proto = await saved_shipping_address(ctx, str(address_id))
        else:
            assert address is not None
            proto = address_proto(address)
        return await change_cart(ctx, cart_token, shipping_address=proto)

    @strawberry.mutation(description="How to ship: one of the cart's `availableShippingMethods`.")
    async def set_cart_shipping_method(
        self,
        info: Info,
        code: Annotated[str, strawberry.argument(description="The method's code.")],
        cart_token: CartToken = None,
    ) -> Cart:
        return await change_cart(info.context, cart_token, shipping_method=code)

    @strawberry.mutation(description="Apply a coupon code (any case); BAD_USER_INPUT for an unknown one.")
    async def apply_coupon(
        self,
        info: Info,
        code: Annotated[str, strawberry.argument(description="The coupon code.")],
        cart_token: CartToken = None,
    ) -> Cart:
        return await change_cart(info.context, cart_token, coupon_code=code)

    @strawberry.mutation(description="Take the coupon off.")
    async def remove_coupon(self, info: Info, cart_token: CartToken = None) -> Cart:
        return await change_cart(info.context, cart_token, remove_coupon=order_pb2.RemoveCoupon())

    @strawberry.mutation(
        description="Place the cart's order, through the same saga as `createOrder` (same idempotency and "
        "`waitSeconds`). Every line is priced again: BAD_USER_INPUT on `cartToken` when a price changed "
        "since it was shown, a product is archived or out of stock, or the coupon no longer applies (the "
        "cart's `problems` say why), or the e-mail (guests), address or shipping method is missing."
    )
    async def checkout(
        self,
        info: Info,
        payment_token: Annotated[str, strawberry.argument(description="The payment provider's card token.")],
        cart_token: CartToken = None,
        idempotency_key: Annotated[
            str | None, strawberry.argument(description="Up to 255 characters; makes retries safe.")
        ] = None,
        wait_seconds: Annotated[
            int | None, strawberry.argument(description="0 to 10: wait for the order to settle.")
        ] = 0,
    ) -> Order:
        ctx = info.context
        wait = wait_seconds or 0
        request = order_pb2.CheckoutRequest(
            cart_token=_for(ctx, cart_token),
            payment_token=payment_token,
            idempotency_key=idempotency_key_of(info, idempotency_key),
            wait_seconds=wait,
        )
        waited = min(max(wait, 0), MAX_WAIT_SECONDS)
        response = await ctx.call(
            ctx.services.order.Checkout, request, timeout=ctx.settings.grpc_timeout + waited
        )
        return Order.from_proto(response.order)

    @strawberry.mutation(description="A new shipping method. ADMIN only.")
    async def create_shipping_method(self, info: Info, input: ShippingMethodInput) -> ShippingMethod:
        ctx = info.context
        ctx.require_admin()
        request = order_pb2.CreateShippingMethodRequest(
            code=input.code,
            name=input.name,
            price=input.price,
            currency=input.currency,
            free_over=input.free_over or "",
            countries=input.countries or [],
        )
        response = await ctx.call(ctx.services.order.CreateShippingMethod, request)
        return ShippingMethod.from_proto(response.shipping_method)

    @strawberry.mutation(description='Set a country\'s tax rate, "20" = 20%. ADMIN only.')
    async def set_tax_rate(
        self,
        info: Info,
        country: Annotated[str, strawberry.argument(description="ISO 3166-1 alpha-2.")],
        rate: Annotated[str, strawberry.argument(description='Percent as a decimal string, "20" = 20%.')],
    ) -> TaxRate:
        ctx = info.context
        ctx.require_admin()
        request = order_pb2.SetTaxRateRequest(country=country, rate=rate)
        r = (await ctx.call(ctx.services.order.SetTaxRate, request)).tax_rate
        return TaxRate(country=r.country, rate=r.rate)

    @strawberry.mutation(description="A new coupon. ADMIN only.")
    async def create_coupon(self, info: Info, input: CouponInput) -> Coupon:
        ctx = info.context
        ctx.require_admin()
        request = order_pb2.CreateCouponRequest(
            code=input.code,
            kind=KIND_TO_PROTO[input.kind],
            value=input.value,
            currency=input.currency or "",
            min_subtotal=input.min_subtotal or "",
            starts_at=to_optional_timestamp(input.starts_at),
            ends_at=to_optional_timestamp(input.ends_at),
            usage_limit=input.usage_limit or 0,
            per_customer_limit=input.per_customer_limit or 0,
        )
        return Coupon.from_proto((await ctx.call(ctx.services.order.CreateCoupon, request)).coupon)
