"""The demo shop's terms `ecommerce seed` loads (and `ecommerce dev` on a first start): two
shipping methods, the tax rates of a few countries and a sample coupon, priced in the catalog's
currency so that the demo products can be checked out with them.

Loading is idempotent by shipping-method code, country and coupon code: what is there already
(an admin's own rate for a country, say) is kept. `ecommerce serve` never loads it, so a
production shop starts with no terms but its admins'.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from order import pricing
from order.models import Coupon, ShippingMethod, TaxRate
from order.shop import normal_coupon_code, parse_rate
from servicekit.money import to_minor

# code, name, price, free over (the discounted subtotal; "" never free), countries
SHIPPING_METHODS = [
    ("STANDARD", "Standard delivery (3-5 days)", "4.90", "50.00", ("DE", "FR", "GB", "US")),
    ("EXPRESS", "Express delivery (next day)", "14.90", "", ("DE", "FR", "GB")),
]
TAX_RATES = {"DE": "19", "FR": "20", "GB": "20", "US": "0"}
COUPON_CODE = "WELCOME10"
COUPON_PERCENT = "10"
COUPON_DAYS = 365  # valid from loading for a year
COUPON_USAGE_LIMIT = 1000
COUPON_PER_CUSTOMER_LIMIT = 1


@dataclass(frozen=True)
class ShopSeedResult:
    shipping_methods: int
    tax_rates: int
    coupons: int


async def shop_is_empty(session: AsyncSession) -> bool:
    """No shipping method, tax rate or coupon yet: a first start, nothing an admin set to keep apart."""
    for column in (ShippingMethod.code, TaxRate.country, Coupon.id):
        if await session.scalar(select(column).limit(1)) is not None:
            return False
    return True


async def seed_shop(session: AsyncSession, *, currency: str, now: datetime) -> ShopSeedResult:
    """Add the demo terms that are missing, in the caller's transaction; how many of each were added."""
    methods = 0
    for code, name, price, free_over, countries in SHIPPING_METHODS:
        added = await session.scalar(
            insert(ShippingMethod)
            .values(
                code=code,
                name=name,
                price_minor=to_minor(price, currency),
                currency=currency,
                free_over_minor=to_minor(free_over, currency) if free_over else None,
                countries=sorted(countries),
            )
            .on_conflict_do_nothing(index_elements=["code"])
            .returning(ShippingMethod.code)
        )
        methods += added is not None
    rates = 0
    for country, rate in TAX_RATES.items():
        added = await session.scalar(
            insert(TaxRate)
            .values(country=country, rate=parse_rate(rate))
            .on_conflict_do_nothing(index_elements=["country"])
            .returning(TaxRate.country)
        )
        rates += added is not None
    coupon = await session.scalar(
        insert(Coupon)
        .values(
            id=uuid.uuid4(),
            code=normal_coupon_code(COUPON_CODE),
            kind=pricing.PERCENT,
            percent=parse_rate(COUPON_PERCENT, "value"),
            starts_at=now,
            ends_at=now + timedelta(days=COUPON_DAYS),
            usage_limit=COUPON_USAGE_LIMIT,
            per_customer_limit=COUPON_PER_CUSTOMER_LIMIT,
            used=0,
        )
        .on_conflict_do_nothing(index_elements=["code"])
        .returning(Coupon.id)
    )
    return ShopSeedResult(methods, rates, int(coupon is not None))
