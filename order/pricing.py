"""A cart's or an order's price breakdown, in integer minor units of one currency.

subtotal   the lines at their catalog prices
discount   the coupon's, at most the subtotal
shipping   the method's price, nothing once the discounted subtotal reaches its `free_over`
tax        the destination's rate on (subtotal - discount + shipping), rounded once per order to
           the minor unit, half to even. With tax-inclusive catalog prices (ORDER_PRICES_INCLUDE_TAX)
           that amount already holds the tax, which is only shown; otherwise the tax is added.
total      subtotal - discount + shipping, plus the tax unless prices include it

Pure functions: the cart and checkout feed them what they read; tests check them directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

PERCENT = "PERCENT"
FIXED = "FIXED"
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Discount:
    """A coupon's terms, as far as pricing is concerned."""

    kind: str  # PERCENT or FIXED
    percent: Decimal | None = None
    amount_minor: int | None = None


@dataclass(frozen=True)
class Shipping:
    price_minor: int
    free_over_minor: int | None = None


@dataclass(frozen=True)
class Breakdown:
    subtotal: int
    discount: int
    shipping: int
    tax: int
    total: int


def _round(value: Decimal) -> int:
    """To a whole minor unit, half to even."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def discount_of(discount: Discount | None, subtotal: int) -> int:
    """What the coupon takes off the subtotal: never more than the subtotal, never negative."""
    if discount is None:
        return 0
    if discount.kind == PERCENT:
        taken = _round(Decimal(subtotal) * (discount.percent or Decimal(0)) / HUNDRED)
    else:
        taken = discount.amount_minor or 0
    return max(0, min(taken, subtotal))


def shipping_of(shipping: Shipping | None, discounted_subtotal: int) -> int:
    if shipping is None:
        return 0
    if shipping.free_over_minor is not None and discounted_subtotal >= shipping.free_over_minor:
        return 0
    return shipping.price_minor


def tax_of(taxable: int, rate: Decimal, *, included: bool) -> int:
    """The tax in `taxable` at `rate` percent: of it when prices include tax, on it otherwise."""
    if rate <= 0 or taxable <= 0:
        return 0
    if included:
        return _round(Decimal(taxable) * rate / (HUNDRED + rate))
    return _round(Decimal(taxable) * rate / HUNDRED)


def breakdown(
    subtotal: int,
    *,
    discount: Discount | None = None,
    shipping: Shipping | None = None,
    tax_rate: Decimal = Decimal(0),
    prices_include_tax: bool = False,
) -> Breakdown:
    taken = discount_of(discount, subtotal)
    discounted = subtotal - taken
    shipped = shipping_of(shipping, discounted)
    taxable = discounted + shipped
    tax = tax_of(taxable, tax_rate, included=prices_include_tax)
    total = taxable if prices_include_tax else taxable + tax
    return Breakdown(subtotal=subtotal, discount=taken, shipping=shipped, tax=tax, total=total)
