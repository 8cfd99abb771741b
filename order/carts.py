"""Carts: a guest's, addressed by a bearer token of 192 random bits (only its SHA-256 is kept),
or a signed-in account's open cart. A cart holds lines and the shopper's choices (e-mail,
address, shipping method, coupon); its prices are the catalog's at the moment it is shown, and
each line remembers the unit price last shown, which checkout holds it to (PRICE_CHANGED).
Carts hold no stock: the saga reserves it at checkout. A cart untouched for ORDER_CART_TTL is
gone (`sweep_expired`); a token that matches no open cart is NOT_FOUND, like another shopper's.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple, Protocol

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Select, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload

from order import pricing, shop
from order.checks import account_of
from order.models import Cart, CartLine, Coupon, ShippingMethod
from order.peers import ProductInfo
from order.terms import ShopTerms
from order.variants import NoSuchVariant, variant_of
from servicekit import money
from servicekit.auth import require_caller
from servicekit.context import Caller
from servicekit.db import reads, transaction
from servicekit.errors import InvalidArgument, NotFound, Violations
from servicekit.ids import parse_id
from servicekit.postal import check_address
from servicekit.text import has_control_characters

TOKEN_PREFIX = "cart_"
MAX_TOKEN_LENGTH = 100
MAX_EMAIL_LENGTH = 254
NOT_FOUND = "cart not found"


class ProductSource(Protocol):
    async def products(self, caller: Caller | None, ids: list[str]) -> dict[str, ProductInfo]: ...


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def customer_key(account_id: uuid.UUID | None, email: str | None) -> str:
    """Whom a coupon's per-customer limit counts: the account, else the guest's e-mail."""
    return str(account_id) if account_id is not None else f"email:{(email or '').lower()}"


def check_email(raw: str, field: str = "email") -> str:
    email = raw.strip()
    if not email:
        raise InvalidArgument.field(field, "is required")
    if len(email) > MAX_EMAIL_LENGTH:
        raise InvalidArgument.field(field, f"must be at most {MAX_EMAIL_LENGTH} characters")
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidArgument.field(field, f"is not a valid e-mail address ({exc})") from None


# -- changes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddLine:
    product_id: str
    quantity: int
    variant_id: str = ""


@dataclass(frozen=True)
class SetQuantity:
    line_id: str
    quantity: int  # 0 removes


@dataclass(frozen=True)
class SetEmail:
    email: str


@dataclass(frozen=True)
class SetAddress:
    address: dict[str, str]


@dataclass(frozen=True)
class SetShippingMethod:
    code: str


@dataclass(frozen=True)
class SetCoupon:
    code: str | None  # None removes it


Change = AddLine | SetQuantity | SetEmail | SetAddress | SetShippingMethod | SetCoupon


# -- the priced view -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    line_id: str = ""


class Adding(NamedTuple):
    """What an AddLine adds: the product as its variant prices it, the variant (None when the
    catalog lists no variants), and the product as the catalog answered (the cart shown after the
    change is priced from it rather than asking the catalog again)."""

    product: ProductInfo
    variant_id: str | None
    listed: ProductInfo


@dataclass(frozen=True)
class PricedLine:
    line: CartLine
    product: ProductInfo | None
    # The catalog's price now; None when the product cannot be sold (see the problems).
    unit_minor: int | None

    @property
    def total_minor(self) -> int:
        return (self.unit_minor or 0) * self.line.quantity


@dataclass(frozen=True)
class CartView:
    cart: Cart
    # The token presented or just made; "" for an account's cart.
    token: str
    currency: str
    lines: list[PricedLine]
    breakdown: pricing.Breakdown
    method: ShippingMethod | None
    methods: list[ShippingMethod]
    coupon: Coupon | None
    problems: list[Problem] = field(default_factory=list)


def fingerprint_of(cart: Cart) -> tuple:
    """What checkout priced: if the locked cart differs, the cart changed in between."""
    return (
        tuple(sorted((str(line.id), line.quantity) for line in cart.lines)),
        cart.email,
        cart.shipping_address,
        cart.shipping_method,
        cart.coupon_code,
    )


@dataclass(kw_only=True, eq=False)
class Carts:
    sessions: async_sessionmaker[AsyncSession]
    catalog: ProductSource
    ttl: timedelta = timedelta(days=30)
    max_lines: int = 100
    # The shipping methods and tax rates every cart is priced with.
    terms: ShopTerms
    max_quantity: int = 1000
    prices_include_tax: bool = False

    # -- finding ---------------------------------------------------------------------------------

    async def find(
        self, session: AsyncSession, caller: Caller | None, token: str, *, lock: bool, open_only: bool = True
    ) -> Cart:
        """The cart a call addresses: by token, or the caller's open account cart (made if missing)."""
        now = datetime.now(UTC)
        if token:
            if len(token) > MAX_TOKEN_LENGTH or has_control_characters(token):
                raise InvalidArgument.field("cart_token", "is not a cart token")
            query = select(Cart).where(Cart.token_hash == token_hash(token), Cart.expires_at > now)
            if open_only:
                query = query.where(Cart.order_id.is_(None))
            cart = await _one_with_lines(session, query, lock)
            if cart is None:
                raise NotFound(NOT_FOUND)
            return cart
        account_id = account_of(require_caller(caller))
        mine = select(Cart).where(
            Cart.account_id == account_id, Cart.token_hash.is_(None), Cart.order_id.is_(None)
        )
        cart = await _one_with_lines(session, mine, lock)
        if cart is not None and cart.expires_at > now:
            return cart
        if cart is not None:  # expired: it goes, a new one takes its place
            await session.execute(delete(Cart).where(Cart.id == cart.id))
        await session.execute(
            insert(Cart)
            .values(id=uuid.uuid4(), account_id=account_id, expires_at=now + self.ttl)
            .on_conflict_do_nothing()
        )
        cart = await _one_with_lines(session, mine, lock)
        assert cart is not None
        return cart

    # -- use cases -------------------------------------------------------------------------------

    async def create(self, caller: Caller | None) -> CartView:
        token = new_token()
        async with transaction(self.sessions) as session:
            cart = Cart(
                id=uuid.uuid4(), token_hash=token_hash(token), expires_at=datetime.now(UTC) + self.ttl
            )
            session.add(cart)
            await session.flush()
            await session.refresh(cart, ["lines"])
        return await self.show(caller, cart, token)

    async def get(self, caller: Caller | None, token: str) -> CartView:
        async with transaction(self.sessions) as session:
            cart = await self.find(session, caller, token, lock=False)
        return await self.show(caller, cart, token)

    async def update(self, caller: Caller | None, token: str, change: Change) -> CartView:
        """Apply the change to the locked cart; the cart in memory is then what was written (its
        lines changed through its collection), so it is shown without being read again."""
        # What the change needs from elsewhere is read before the cart is locked.
        adding = await self._product_to_add(caller, change)
        method = await self._method_to_set(change)
        async with transaction(self.sessions) as session:
            cart = await self.find(session, caller, token, lock=True)
            await self._apply(session, cart, change, adding, method)
            cart.expires_at = datetime.now(UTC) + self.ttl
        known = {adding.listed.id: adding.listed} if adding is not None else {}
        return await self.show(caller, cart, token, known=known)

    async def merge(self, caller: Caller | None, token: str) -> CartView:
        """A guest cart's lines and choices taken into the caller's account cart; the guest cart goes."""
        require_caller(caller)
        if not token:
            raise InvalidArgument.field("cart_token", "is required")
        async with transaction(self.sessions) as session:
            guest = await self.find(session, caller, token, lock=True)
            mine = await self.find(session, caller, "", lock=True)
            by_variant = {(line.product_id, line.variant_id): line for line in mine.lines}
            for line in guest.lines:
                key = (line.product_id, line.variant_id)
                held = by_variant.get(key)
                if held is not None:
                    held.quantity = min(self.max_quantity, held.quantity + line.quantity)
                elif len(by_variant) < self.max_lines:
                    by_variant[key] = CartLine(
                        id=uuid.uuid4(),
                        cart_id=mine.id,
                        product_id=line.product_id,
                        variant_id=line.variant_id,
                        quantity=line.quantity,
                    )
                    session.add(by_variant[key])
            for name in ("email", "shipping_address", "shipping_method", "coupon_code"):
                if getattr(mine, name) is None:
                    setattr(mine, name, getattr(guest, name))
            mine.expires_at = datetime.now(UTC) + self.ttl
            await session.delete(guest)
            await session.flush()
            mine = await self.find(session, caller, "", lock=False)
        return await self.show(caller, mine, "")

    async def sweep_expired(self) -> int:
        """Delete the carts whose time ran out; how many."""
        async with transaction(self.sessions) as session:
            result = await session.execute(delete(Cart).where(Cart.expires_at <= datetime.now(UTC)))
        return int(getattr(result, "rowcount", 0) or 0)

    # -- changes ---------------------------------------------------------------------------------

    async def _product_to_add(self, caller: Caller | None, change: Change) -> Adding | None:
        """The product (as the variant added prices it) and the variant an AddLine adds."""
        if not isinstance(change, AddLine):
            return None
        violations = Violations()
        product_id = None
        variant_id = None
        try:
            product_id = uuid.UUID(change.product_id)
        except (ValueError, AttributeError, TypeError):
            violations.add("product_id", "is not a valid product id")
        if change.variant_id:
            try:
                variant_id = uuid.UUID(change.variant_id)
            except (ValueError, AttributeError, TypeError):
                violations.add("variant_id", "is not a valid variant id")
        if not 1 <= change.quantity <= self.max_quantity:
            violations.add("quantity", f"must be between 1 and {self.max_quantity}")
        violations.raise_if_any()
        product = (await self.catalog.products(caller, [str(product_id)])).get(str(product_id))
        if product is None:
            raise InvalidArgument.field("product_id", "no such product")
        if product.archived:
            raise InvalidArgument.field("product_id", "this product is no longer sold")
        try:
            chosen, priced = variant_of(product, variant_id)
        except NoSuchVariant as exc:
            raise InvalidArgument.field("variant_id", str(exc)) from None
        return Adding(priced, str(chosen) if chosen else None, product)

    async def _method_to_set(self, change: Change) -> ShippingMethod | None:
        """The shipping method a SetShippingMethod names."""
        if not isinstance(change, SetShippingMethod):
            return None
        chosen = change.code.strip()
        method = next((m for m in (await self.terms.get()).methods if m.code == chosen), None)
        if method is None:
            raise InvalidArgument.field("shipping_method", "no such shipping method")
        return method

    async def _apply(
        self,
        session: AsyncSession,
        cart: Cart,
        change: Change,
        adding: Adding | None,
        method: ShippingMethod | None,
    ) -> None:
        match change:
            case AddLine():
                assert adding is not None
                product, variant_id, _ = adding
                product_id = uuid.UUID(product.id)
                line = next(
                    (
                        line
                        for line in cart.lines
                        if (line.product_id, line.variant_id) == (product_id, variant_id)
                    ),
                    None,
                )
                if line is None:
                    if len(cart.lines) >= self.max_lines:
                        raise InvalidArgument.field(
                            "product_id", f"a cart holds at most {self.max_lines} lines"
                        )
                    cart.lines.append(
                        CartLine(
                            id=uuid.uuid4(),
                            cart_id=cart.id,
                            product_id=product_id,
                            variant_id=variant_id,
                            quantity=change.quantity,
                            shown_price_minor=product.price_minor,
                            shown_currency=product.currency,
                        )
                    )
                elif line.quantity + change.quantity > self.max_quantity:
                    raise InvalidArgument.field(
                        "quantity",
                        f"the line would hold {line.quantity + change.quantity}, more than {self.max_quantity}",
                    )
                else:
                    line.quantity += change.quantity
            case SetQuantity(line_id=line_id, quantity=quantity):
                wanted = parse_id(line_id, "line_id")
                if not 0 <= quantity <= self.max_quantity:
                    raise InvalidArgument.field("quantity", f"must be between 0 and {self.max_quantity}")
                line = next((line for line in cart.lines if line.id == wanted), None)
                if line is None:
                    raise NotFound("cart line not found")
                if quantity == 0:
                    cart.lines.remove(line)  # deleted as an orphan
                else:
                    line.quantity = quantity
            case SetEmail(email=email):
                cart.email = check_email(email)
            case SetAddress(address=address):
                violations = Violations()
                checked = check_address(address, violations, "shipping_address")
                violations.raise_if_any()
                cart.shipping_address = checked
            case SetShippingMethod():
                assert method is not None
                country = (cart.shipping_address or {}).get("country")
                if country and method.countries and country not in method.countries:
                    raise InvalidArgument.field("shipping_method", f"does not ship to {country}")
                cart.shipping_method = method.code
            case SetCoupon(code=None):
                cart.coupon_code = None
            case SetCoupon(code=str() as raw):
                code = shop.normal_coupon_code(raw)
                coupon = (
                    await session.scalar(select(Coupon).where(Coupon.code == code))
                    if len(code) <= 40
                    else None
                )
                if coupon is None:
                    raise InvalidArgument.field("coupon_code", "this coupon code does not exist")
                cart.coupon_code = coupon.code

    # -- pricing ---------------------------------------------------------------------------------

    async def show(
        self, caller: Caller | None, cart: Cart, token: str, *, known: Mapping[str, ProductInfo] | None = None
    ) -> CartView:
        """The cart priced now; the prices shown are remembered on its lines."""
        view = await self.price(caller, cart, token, known=known)
        await self.remember_shown(view)
        return view

    async def remember_shown(self, view: CartView) -> None:
        changed = {
            p.line.id: (p.unit_minor, view.currency)
            for p in view.lines
            if p.unit_minor is not None
            and (p.line.shown_price_minor != p.unit_minor or p.line.shown_currency != view.currency)
        }
        if not changed:
            return
        async with transaction(self.sessions) as session:
            for line_id, (unit, currency) in changed.items():
                line = await session.get(CartLine, line_id)
                if line is not None:
                    line.shown_price_minor, line.shown_currency = unit, currency

    async def price(
        self, caller: Caller | None, cart: Cart, token: str, *, known: Mapping[str, ProductInfo] | None = None
    ) -> CartView:
        """The cart priced with the catalog's products now: those of `known` (just answered by the
        catalog) and the others asked for."""
        products = dict(known or {})
        missing = list(
            dict.fromkeys(str(line.product_id) for line in cart.lines if str(line.product_id) not in products)
        )
        if missing:
            products |= await self.catalog.products(caller, missing)
        problems: list[Problem] = []
        priced: list[PricedLine] = []
        currency = next(
            (
                p.currency
                for line in cart.lines
                if (p := products.get(str(line.product_id))) and not p.archived
            ),
            "",
        )
        for line in cart.lines:
            product = products.get(str(line.product_id))
            line_id = str(line.id)
            unit: int | None = None
            if product is not None and not product.archived:
                try:
                    _, product = variant_of(product, uuid.UUID(line.variant_id) if line.variant_id else None)
                except NoSuchVariant:
                    problems.append(Problem("PRODUCT_UNAVAILABLE", "this variant is no longer sold", line_id))
                    priced.append(PricedLine(line, None, None))
                    continue
            if product is None:
                problems.append(Problem("PRODUCT_UNAVAILABLE", "this product no longer exists", line_id))
            elif product.archived:
                problems.append(Problem("PRODUCT_ARCHIVED", f"{product.name} is no longer sold", line_id))
            elif product.currency != currency:
                problems.append(
                    Problem("CURRENCY_MISMATCH", f"{product.name} is priced in another currency", line_id)
                )
            else:
                unit = product.price_minor
                if product.stock < line.quantity:
                    problems.append(
                        Problem(
                            "OUT_OF_STOCK", f"only {max(product.stock, 0)} of {product.name} left", line_id
                        )
                    )
                shown = line.shown_price_minor
                if shown is not None and (shown != unit or line.shown_currency != currency):
                    was = money.format_money(shown, line.shown_currency or currency)
                    problems.append(
                        Problem(
                            "PRICE_CHANGED",
                            f"the price of {product.name} changed from {was} to {money.format_money(unit, currency)}",
                            line_id,
                        )
                    )
            priced.append(PricedLine(line, product, unit))
        subtotal = sum(p.total_minor for p in priced)
        country = (cart.shipping_address or {}).get("country", "")
        shop_terms = await self.terms.get()
        all_methods = shop_terms.methods
        tax_rate = shop_terms.rates.get(country)
        coupon = None
        if cart.coupon_code:
            async with reads(self.sessions) as session:
                coupon = await session.scalar(select(Coupon).where(Coupon.code == cart.coupon_code))
        methods = [
            m
            for m in all_methods
            if (not currency or m.currency == currency)
            and (not country or not m.countries or country in m.countries)
        ]
        method = next((m for m in all_methods if m.code == cart.shipping_method), None)
        if cart.shipping_method and method not in methods:
            problems.append(
                Problem("SHIPPING_METHOD_UNAVAILABLE", "the chosen shipping method does not serve this cart")
            )
            method = None
        terms = None
        if cart.coupon_code:
            why = shop.coupon_problem(coupon, subtotal=subtotal, currency=currency, now=datetime.now(UTC))
            if why is None and coupon is not None:
                terms = shop.coupon_terms(coupon)
            else:
                problems.append(Problem("COUPON_INVALID", why or "this coupon does not apply"))
        breakdown = pricing.breakdown(
            subtotal,
            discount=terms,
            shipping=pricing.Shipping(method.price_minor, method.free_over_minor) if method else None,
            tax_rate=tax_rate if tax_rate is not None else Decimal(0),
            prices_include_tax=self.prices_include_tax,
        )
        return CartView(
            cart=cart,
            token=token if cart.token_hash else "",
            currency=currency or (method.currency if method else ""),
            lines=priced,
            breakdown=breakdown,
            method=method,
            methods=methods,
            coupon=coupon if terms else None,
            problems=problems,
        )


async def _one_with_lines(session: AsyncSession, query: Select[Cart], lock: bool) -> Cart | None:
    """The cart the query finds, read afresh with its lines in one statement (joined), and with
    lock its row locked (`FOR UPDATE OF carts`: the lines are the nullable side of the join)."""
    query = query.options(joinedload(Cart.lines)).execution_options(populate_existing=True)
    if lock:
        query = query.with_for_update(of=Cart)
    return (await session.scalars(query)).unique().one_or_none()
