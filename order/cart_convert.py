"""Conversions of carts and the shop's pricing terms (shipping methods, tax rates, coupons) to
their protobuf messages, and of the cart changes a request names to the use case's."""

from __future__ import annotations

from ecommerce.common.v1 import money_pb2
from ecommerce.order.v1 import order_pb2
from order import carts, pricing, shop
from order.models import Coupon, ShippingMethod, TaxRate
from servicekit import money, pages
from servicekit.errors import InvalidArgument
from servicekit.postal import address_fields
from servicekit.timestamps import to_optional_timestamp, to_timestamp

KIND_TO_PROTO = {pricing.PERCENT: order_pb2.COUPON_KIND_PERCENT, pricing.FIXED: order_pb2.COUPON_KIND_FIXED}
KIND_FROM_PROTO = {v: k for k, v in KIND_TO_PROTO.items()}


def method_to_proto(method: ShippingMethod) -> order_pb2.ShippingMethod:
    message = order_pb2.ShippingMethod(
        code=method.code,
        name=method.name,
        price=money.to_proto(method.price_minor, method.currency),
        countries=list(method.countries),
    )
    if method.free_over_minor is not None:
        message.free_over.CopyFrom(money.to_proto(method.free_over_minor, method.currency))
    return message


def tax_rate_to_proto(rate: TaxRate) -> order_pb2.TaxRate:
    return order_pb2.TaxRate(country=rate.country, rate=shop.rate_text(rate.rate))


def coupon_to_proto(coupon: Coupon) -> order_pb2.Coupon:
    currency = coupon.currency or ""
    if coupon.kind == pricing.PERCENT:
        value = shop.rate_text(coupon.percent or 0)  # type: ignore[arg-type]
    else:
        value = f"{money.to_decimal(coupon.amount_minor or 0, currency):f}"
    message = order_pb2.Coupon(
        id=str(coupon.id),
        code=coupon.code,
        kind=KIND_TO_PROTO[coupon.kind],
        value=value,
        currency=currency,
        starts_at=to_optional_timestamp(coupon.starts_at),
        ends_at=to_optional_timestamp(coupon.ends_at),
        usage_limit=coupon.usage_limit or 0,
        per_customer_limit=coupon.per_customer_limit or 0,
        used=coupon.used,
        created_at=to_timestamp(coupon.created_at),
    )
    if coupon.min_subtotal_minor is not None:
        message.min_subtotal.CopyFrom(money.to_proto(coupon.min_subtotal_minor, currency))
    return message


def coupons_to_proto(page: pages.Page[Coupon]) -> order_pb2.ListCouponsResponse:
    return order_pb2.ListCouponsResponse(
        coupons=[coupon_to_proto(c) for c in page.items], **pages.page_fields(page)
    )


def cart_to_proto(view: carts.CartView) -> order_pb2.Cart:
    cart, currency, amounts = view.cart, view.currency, view.breakdown

    def cash(amount: int) -> money_pb2.Money:
        return money.to_proto(amount, currency)

    message = order_pb2.Cart(
        id=str(cart.id),
        token=view.token,
        email=cart.email or "",
        coupon_code=cart.coupon_code or "",
        lines=[
            order_pb2.CartLine(
                id=str(p.line.id),
                product_id=str(p.line.product_id),
                variant_id=p.line.variant_id or "",
                quantity=p.line.quantity,
                unit_price=money.to_proto(p.unit_minor or 0, currency),
                line_total=money.to_proto(p.total_minor, currency),
            )
            for p in view.lines
        ],
        subtotal=cash(amounts.subtotal),
        discount=cash(amounts.discount),
        shipping=cash(amounts.shipping),
        tax=cash(amounts.tax),
        total=cash(amounts.total),
        available_shipping_methods=[method_to_proto(m) for m in view.methods],
        problems=[
            order_pb2.CartProblem(line_id=p.line_id, code=p.code, message=p.message) for p in view.problems
        ],
        expires_at=to_timestamp(cart.expires_at),
    )
    if cart.shipping_address:
        message.shipping_address.CopyFrom(order_pb2.ShippingAddress(**cart.shipping_address))
    if view.method is not None:
        message.shipping_method.CopyFrom(method_to_proto(view.method))
    return message


def change_from_proto(request: order_pb2.UpdateCartRequest) -> carts.Change:
    match request.WhichOneof("change"):
        case "add_line":
            add = request.add_line
            return carts.AddLine(add.product_id, add.quantity, add.variant_id)
        case "update_line":
            return carts.SetQuantity(request.update_line.line_id, request.update_line.quantity)
        case "remove_line":
            return carts.SetQuantity(request.remove_line.line_id, 0)
        case "email":
            return carts.SetEmail(request.email)
        case "shipping_address":
            return carts.SetAddress(address_fields(request.shipping_address))
        case "shipping_method":
            return carts.SetShippingMethod(request.shipping_method)
        case "coupon_code":
            return carts.SetCoupon(request.coupon_code)
        case "remove_coupon":
            return carts.SetCoupon(None)
    raise InvalidArgument.field("change", "name one change of the cart")
