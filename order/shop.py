"""The shop's pricing terms kept by the order service: shipping methods, tax rates per
destination country and coupon codes. Admins write them; carts and checkout read them.

A coupon's uses are counted exactly: `claim_coupon` raises `used` by a conditional UPDATE (which
also row-locks the coupon, serialising the per-customer count behind it) in the transaction that
creates the order, and `give_back_coupon` undoes it in the transaction that cancels the order.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order import pricing
from order.models import Coupon, CouponUse, ShippingMethod, TaxRate
from order.terms import ShopTerms
from servicekit import money, pages
from servicekit.auth import require_admin
from servicekit.context import Caller
from servicekit.cursor import CursorCodec
from servicekit.db import snapshot, transaction
from servicekit.errors import AlreadyExists, InvalidArgument, Violations
from servicekit.postal import COUNTRIES
from servicekit.text import clean_text

SHIPPING_CODE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
COUPON_CODE = re.compile(r"^[A-Z0-9_-]{3,40}$")
MAX_COUNTRIES = 250
MAX_NAME_LENGTH = 100
MAX_LIMIT = 1_000_000


@dataclass(frozen=True)
class NewShippingMethod:
    code: str
    name: str
    price: str
    currency: str
    free_over: str = ""
    countries: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewCoupon:
    code: str
    kind: str  # PERCENT or FIXED
    value: str
    currency: str = ""
    min_subtotal: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    usage_limit: int = 0
    per_customer_limit: int = 0


def normal_coupon_code(code: str) -> str:
    return code.strip().upper()


def _amount(raw: str, currency: str, field: str, violations: Violations) -> int | None:
    if not money.is_currency(currency):
        return None  # the currency's own violation says why
    try:
        minor = money.to_minor(raw.strip(), currency)
    except ValueError as exc:
        violations.add(field, str(exc))
        return None
    if minor < 0:
        violations.add(field, "must not be negative")
        return None
    return minor


def _currency(raw: str, violations: Violations, field: str = "currency") -> str:
    currency = raw.strip().upper()
    if not money.is_currency(currency):
        violations.add(field, "is not a known ISO 4217 currency code")
    return currency


def _countries(
    raw: tuple[str, ...] | list[str], violations: Violations, field: str = "countries"
) -> list[str]:
    if len(raw) > MAX_COUNTRIES:
        violations.add(field, f"must list at most {MAX_COUNTRIES} countries")
        return []
    codes = [c.strip().upper() for c in raw]
    for index, code in enumerate(codes):
        if code not in COUNTRIES:
            violations.add(f"{field}[{index}]", "is not an ISO 3166-1 alpha-2 country code")
    return sorted(set(codes))


def parse_rate(raw: str, field: str = "rate") -> Decimal:
    """A percentage, "20" = 20%: 0 to 100 with at most 4 decimals."""
    try:
        rate = Decimal(raw.strip())
    except (InvalidOperation, AttributeError):
        raise InvalidArgument.field(field, "is not a decimal number") from None
    if not rate.is_finite() or not 0 <= rate <= 100:
        raise InvalidArgument.field(field, "must be a percentage between 0 and 100")
    if rate != rate.quantize(Decimal("0.0001")):
        raise InvalidArgument.field(field, "must have at most 4 decimal places")
    return rate.normalize() if rate else Decimal(0)


def rate_text(rate: Decimal) -> str:
    return f"{rate.normalize():f}"


def coupon_terms(coupon: Coupon) -> pricing.Discount:
    return pricing.Discount(coupon.kind, percent=coupon.percent, amount_minor=coupon.amount_minor)


def coupon_problem(coupon: Coupon | None, *, subtotal: int, currency: str, now: datetime) -> str | None:
    """Why the coupon does not apply to a cart now, or None. (Usage limits are checked at checkout.)"""
    if coupon is None:
        return "this coupon code does not exist"
    if coupon.starts_at is not None and now < coupon.starts_at:
        return "this coupon is not valid yet"
    if coupon.ends_at is not None and now >= coupon.ends_at:
        return "this coupon has expired"
    if coupon.usage_limit is not None and coupon.used >= coupon.usage_limit:
        return "this coupon has been used up"
    if coupon.currency and currency and coupon.currency != currency:
        return f"this coupon is for prices in {coupon.currency}"
    if coupon.min_subtotal_minor is not None and subtotal < coupon.min_subtotal_minor:
        minimum = money.format_money(coupon.min_subtotal_minor, coupon.currency or currency)
        return f"this coupon needs a subtotal of at least {minimum}"
    return None


async def claim_coupon(
    session: AsyncSession, coupon_id: uuid.UUID, order_id: uuid.UUID, customer: str
) -> str | None:
    """Take one use of the coupon for this (already flushed) order, in its transaction; why not, or None."""
    now = func.now()
    row = (
        await session.execute(
            update(Coupon)
            .where(
                Coupon.id == coupon_id,
                (Coupon.usage_limit.is_(None)) | (Coupon.used < Coupon.usage_limit),
                (Coupon.starts_at.is_(None)) | (Coupon.starts_at <= now),
                (Coupon.ends_at.is_(None)) | (Coupon.ends_at > now),
            )
            .values(used=Coupon.used + 1)
            .returning(Coupon.per_customer_limit)
        )
    ).first()
    if row is None:
        return "this coupon has been used up or is no longer valid"
    # The UPDATE holds the coupon's row lock: this customer's count cannot change under us.
    limit = row[0]
    if limit is not None:
        held = await session.scalar(
            select(func.count())
            .select_from(CouponUse)
            .where(CouponUse.coupon_id == coupon_id, CouponUse.customer == customer)
        )
        if (held or 0) >= limit:
            return "you have already used this coupon as often as it allows"
    session.add(CouponUse(order_id=order_id, coupon_id=coupon_id, customer=customer))
    await session.flush()
    return None


async def give_back_coupon(session: AsyncSession, order_id: uuid.UUID) -> None:
    """A cancelled order's coupon use, returned in the cancelling transaction (if it held one)."""
    coupon_id = await session.scalar(
        delete(CouponUse).where(CouponUse.order_id == order_id).returning(CouponUse.coupon_id)
    )
    if coupon_id is not None:
        await session.execute(update(Coupon).where(Coupon.id == coupon_id).values(used=Coupon.used - 1))


class Shop:
    """The admin's side: shipping methods, tax rates and coupons; and the lookups carts make."""

    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], cursor_secret: str, terms: ShopTerms
    ) -> None:
        self.sessions = sessions
        self.cursors = CursorCodec(cursor_secret, purpose="coupons")
        # What carts remember of the shipping methods and tax rates: a trigger announces every change
        # to every process; this one forgets at once, so that its own next cart sees the change.
        self.terms = terms

    async def create_shipping_method(self, caller: Caller | None, new: NewShippingMethod) -> ShippingMethod:
        require_admin(caller)
        violations = Violations()
        code = new.code.strip()
        if not SHIPPING_CODE.match(code):
            violations.add("code", "must be 1-40 letters, digits, '-' or '_'")
        name = clean_text(new.name, "name", violations, max_length=MAX_NAME_LENGTH, required=True)
        currency = _currency(new.currency, violations)
        price = _amount(new.price, currency, "price", violations)
        free_over = (
            _amount(new.free_over, currency, "free_over", violations) if new.free_over.strip() else None
        )
        countries = _countries(new.countries, violations)
        violations.raise_if_any()
        method = ShippingMethod(
            code=code,
            name=name,
            price_minor=price,
            currency=currency,
            free_over_minor=free_over,
            countries=countries,
        )
        try:
            async with transaction(self.sessions) as session:
                session.add(method)
        except IntegrityError:
            raise AlreadyExists("a shipping method with this code exists", field="code") from None
        self.terms.forget()
        return method

    async def shipping_methods(self, country: str = "") -> list[ShippingMethod]:
        """Every method, or those that ship to `country` (one listing none ships everywhere)."""
        query = select(ShippingMethod).order_by(ShippingMethod.price_minor, ShippingMethod.code)
        if country:
            country = country.strip().upper()
            if country not in COUNTRIES:
                raise InvalidArgument.field("country", "is not an ISO 3166-1 alpha-2 country code")
            query = query.where(
                (func.cardinality(ShippingMethod.countries) == 0)
                | ShippingMethod.countries.contains([country])
            )
        async with snapshot(self.sessions) as session:
            return list((await session.scalars(query)).all())

    async def set_tax_rate(self, caller: Caller | None, *, country: str, rate: str) -> TaxRate:
        require_admin(caller)
        code = country.strip().upper()
        if code not in COUNTRIES:
            raise InvalidArgument.field("country", "is not an ISO 3166-1 alpha-2 country code")
        value = parse_rate(rate)
        async with transaction(self.sessions) as session:
            row = await session.get(TaxRate, code, with_for_update=True)
            if row is None:
                row = TaxRate(country=code, rate=value)
                session.add(row)
            else:
                row.rate = value
        self.terms.forget()
        return TaxRate(country=code, rate=value)

    async def tax_rates(self, caller: Caller | None) -> list[TaxRate]:
        require_admin(caller)
        async with snapshot(self.sessions) as session:
            return list((await session.scalars(select(TaxRate).order_by(TaxRate.country))).all())

    async def create_coupon(self, caller: Caller | None, new: NewCoupon) -> Coupon:
        require_admin(caller)
        violations = Violations()
        code = normal_coupon_code(new.code)
        if not COUPON_CODE.match(code):
            violations.add("code", "must be 3-40 letters, digits, '-' or '_'")
        currency = new.currency.strip().upper()
        if currency or new.kind == pricing.FIXED or new.min_subtotal.strip():
            currency = _currency(new.currency, violations)
        percent: Decimal | None = None
        amount: int | None = None
        if new.kind == pricing.PERCENT:
            try:
                percent = parse_rate(new.value, "value")
            except InvalidArgument as exc:
                violations.add("value", exc.violations[0].description)
            else:
                if percent == 0:
                    violations.add("value", "must be more than 0")
        elif new.kind == pricing.FIXED:
            amount = _amount(new.value, currency, "value", violations)
            if amount == 0:
                violations.add("value", "must be more than 0")
        else:
            violations.add("kind", "must be PERCENT or FIXED")
        minimum = (
            _amount(new.min_subtotal, currency, "min_subtotal", violations)
            if new.min_subtotal.strip()
            else None
        )
        if new.starts_at and new.ends_at and new.ends_at <= new.starts_at:
            violations.add("ends_at", "must be after starts_at")
        for field, limit in (
            ("usage_limit", new.usage_limit),
            ("per_customer_limit", new.per_customer_limit),
        ):
            if not 0 <= limit <= MAX_LIMIT:
                violations.add(field, f"must be between 0 (no limit) and {MAX_LIMIT:,}")
        violations.raise_if_any()
        coupon = Coupon(
            id=uuid.uuid4(),
            code=code,
            kind=new.kind,
            percent=percent,
            amount_minor=amount,
            currency=currency or None,
            min_subtotal_minor=minimum,
            starts_at=new.starts_at,
            ends_at=new.ends_at,
            usage_limit=new.usage_limit or None,
            per_customer_limit=new.per_customer_limit or None,
            used=0,
        )
        try:
            async with transaction(self.sessions) as session:
                session.add(coupon)
                await session.flush()
                await session.refresh(coupon, ["created_at"])
        except IntegrityError:
            raise AlreadyExists("a coupon with this code exists", field="code") from None
        return coupon

    async def coupons(self, caller: Caller | None, *, page_size: int, page_token: str) -> pages.Page[Coupon]:
        require_admin(caller)
        size = pages.page_size(page_size, maximum=100, default=20)
        query = select(Coupon).order_by(Coupon.created_at.desc(), Coupon.id.desc())
        if page_token:
            query = query.where(
                tuple_(Coupon.created_at, Coupon.id) < pages.position_after(self.cursors, page_token)
            )
        async with snapshot(self.sessions) as session:
            rows = list((await session.scalars(query.limit(size + 1))).all())
            total = await session.scalar(select(func.count()).select_from(Coupon)) or 0
        return pages.page_of(rows, size, total, lambda c: pages.position_cursor(self.cursors, c))
