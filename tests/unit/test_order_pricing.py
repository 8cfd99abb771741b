"""The price breakdown: discount, free shipping, tax on the discounted subtotal plus shipping,
rounded once per order half to even, with and without tax-inclusive prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from order.pricing import FIXED, PERCENT, Breakdown, Discount, Shipping, breakdown, discount_of, tax_of


def test_no_extras_is_the_subtotal():
    assert breakdown(1999) == Breakdown(subtotal=1999, discount=0, shipping=0, tax=0, total=1999)


def test_tax_is_on_the_discounted_subtotal_plus_shipping():
    result = breakdown(
        10000,
        discount=Discount(PERCENT, percent=Decimal(10)),
        shipping=Shipping(price_minor=500),
        tax_rate=Decimal(20),
    )
    # (10000 - 1000 + 500) * 20% = 1900
    assert result == Breakdown(subtotal=10000, discount=1000, shipping=500, tax=1900, total=11400)


@pytest.mark.parametrize(
    ("taxable", "rate", "tax"),
    [
        (25, "10", 2),  # 2.5 -> 2 (half to even)
        (35, "10", 4),  # 3.5 -> 4
        (15, "10", 2),  # 1.5 -> 2
        (1, "19", 0),  # 0.19 -> 0
        (1234, "7.7", 95),  # 95.018
    ],
)
def test_tax_rounds_half_to_even_once(taxable, rate, tax):
    assert tax_of(taxable, Decimal(rate), included=False) == tax


def test_rounding_once_per_order_not_per_line():
    # Three lines of 0.25 at 10%: per line each would round 2.5 -> 2 (6 in all); once per order 7.5 -> 8.
    assert breakdown(75, tax_rate=Decimal(10)).tax == 8


def test_tax_inclusive_prices_show_the_tax_inside_the_total():
    result = breakdown(12000, tax_rate=Decimal(20), prices_include_tax=True)
    assert result == Breakdown(subtotal=12000, discount=0, shipping=0, tax=2000, total=12000)


def test_tax_inclusive_rounds_half_to_even():
    # taxable * rate / (100 + rate): 1050 * 5 / 105 = 50; 42 * 25 / 125 = 8.4 -> 8
    assert tax_of(1050, Decimal(5), included=True) == 50
    assert tax_of(42, Decimal(25), included=True) == 8
    # 50 * 25 / 125 = 10; 52.5 cannot occur, but 2.5 can: 15 * 20 / 120 = 2.5 -> 2, 21 * 20 / 120 = 3.5 -> 4
    assert tax_of(15, Decimal(20), included=True) == 2
    assert tax_of(21, Decimal(20), included=True) == 4


def test_free_shipping_over_the_discounted_subtotal():
    shipping = Shipping(price_minor=490, free_over_minor=5000)
    assert breakdown(5000, shipping=shipping).shipping == 0
    # The discount brings it under the threshold: shipping is charged again.
    assert breakdown(5000, shipping=shipping, discount=Discount(FIXED, amount_minor=1)).shipping == 490


def test_a_fixed_discount_never_exceeds_the_subtotal():
    assert discount_of(Discount(FIXED, amount_minor=5000), 1200) == 1200
    assert breakdown(1200, discount=Discount(FIXED, amount_minor=5000)).total == 0


def test_percent_discount_rounds_half_to_even():
    assert discount_of(Discount(PERCENT, percent=Decimal("12.5")), 20) == 2  # 2.5 -> 2
    assert discount_of(Discount(PERCENT, percent=Decimal("12.5")), 28) == 4  # 3.5 -> 4


def test_zero_rate_or_nothing_to_tax_is_no_tax():
    assert tax_of(0, Decimal(20), included=False) == 0
    assert tax_of(1000, Decimal(0), included=True) == 0
