"""Placing an order: the request's checks, the prices from the catalog, the payment token's
check, then the order and its saga's first command in one transaction. Idempotent per account
and key: a retry of the same request answers with the order it created."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order import pricing, queries
from order.checks import account_of
from order.models import Order, OrderItem
from order.peers import ProductInfo
from order.saga import Saga
from order.variants import NoSuchVariant, variant_of
from servicekit.auth import require_caller
from servicekit.context import CUSTOMER, Caller
from servicekit.db import snapshot, transaction
from servicekit.errors import AlreadyExists, InvalidArgument, PermissionDenied, Violations
from servicekit.postal import check_address
from servicekit.text import has_control_characters

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_WAIT_SECONDS = 10
MAX_PAYMENT_TOKEN_LENGTH = 255
IDEMPOTENCY_CONSTRAINT = "uq_orders_account_id_idempotency_key"


class ProductSource(Protocol):
    async def products(self, caller: Caller | None, ids: list[str]) -> dict[str, ProductInfo]: ...


class PaymentTokens(Protocol):
    async def validate_token(self, caller: Caller | None, token: str) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class LineRequest:
    product_id: str
    quantity: int
    # Empty: the product's only variant.
    variant_id: str = ""


@dataclass(frozen=True)
class PlaceOrder:
    items: Sequence[LineRequest]
    payment_token: str
    shipping_address: dict[str, str]
    idempotency_key: str = ""
    # How long the caller waits for the order to settle (`OrderService.create_order`).
    wait_seconds: int = 0


@dataclass(frozen=True)
class Placed:
    order: Order
    # True when an earlier request with the same idempotency key created it.
    replay: bool


@dataclass(frozen=True)
class NewOrder:
    """An order this request just placed, not read back: `OrderService.settle` reads it once,
    after it starts listening for its settling when the caller waits for that."""

    order_id: uuid.UUID


@dataclass(frozen=True)
class _MergedLine:
    index: int  # of its first occurrence in the request, for error messages
    product_id: uuid.UUID
    quantity: int
    variant_id: uuid.UUID | None = None


@dataclass(kw_only=True, slots=True, eq=False)
class Placement:
    """Places orders: checks the request, prices it from the catalog, and starts its saga."""

    sessions: async_sessionmaker[AsyncSession]
    saga: Saga
    catalog: ProductSource
    payments: PaymentTokens
    max_lines: int = 50
    max_quantity: int = 1000
    # ACCOUNT_REQUIRE_EMAIL_VERIFICATION: a customer checks out only with a verified e-mail.
    require_email_verification: bool = False

    async def create_order(
        self, caller: Caller | None, request: PlaceOrder, *, order_id: uuid.UUID | None = None
    ) -> Placed | NewOrder:
        """Place the order (under `order_id`, a new id by default), or answer the one an earlier
        request with its idempotency key placed."""
        caller = require_caller(caller)
        self.check_verified(caller)
        account_id = account_of(caller)
        lines, address = self._validate(request)
        key = request.idempotency_key or None
        request_hash = _request_hash(lines, request.payment_token, address) if key else None
        if key is not None:
            # A retry of a finished request answers at once, without asking the peers again.
            earlier = await self._by_key(account_id, key)
            if earlier is not None:
                return replay(earlier, request_hash)

        products = await self.catalog.products(caller, [str(line.product_id) for line in lines])
        priced = _price(lines, products)
        valid, why = await self.payments.validate_token(caller, request.payment_token)
        if not valid:
            raise InvalidArgument.field("payment_token", why or "is not a valid payment token")

        order_id = order_id or uuid.uuid4()
        try:
            async with transaction(self.sessions) as session:
                order = build_order(
                    order_id,
                    account_id=account_id,
                    lines=[
                        (line.product_id, line.quantity, product, line.variant_id) for line, product in priced
                    ],
                    amounts=pricing.breakdown(sum(p.price_minor * line.quantity for line, p in priced)),
                    payment_token=request.payment_token,
                    address=address,
                    key=key,
                    request_hash=request_hash,
                )
                await self.saga.start(session, order, datetime.now(UTC))
        except IntegrityError as exc:
            if key is None or IDEMPOTENCY_CONSTRAINT not in str(exc.orig):
                raise
            # Another request with this key committed first (this insert waited for it on the index).
            earlier = await self._by_key(account_id, key)
            if earlier is None:
                raise
            return replay(earlier, request_hash)
        log.info("order placed", extra={"order_id": str(order_id), "lines": len(priced)})
        return NewOrder(order_id)

    def check_verified(self, caller: Caller) -> None:
        if self.require_email_verification and caller.role == CUSTOMER and not caller.email_verified:
            raise PermissionDenied(
                "verify your e-mail address before checking out (requestEmailVerification)",
                reason="EMAIL_NOT_VERIFIED",
            )

    def _validate(self, request: PlaceOrder) -> tuple[list[_MergedLine], dict[str, str]]:
        violations = Violations()
        items = list(request.items)
        if not items:
            violations.add("items", "must contain at least one line")
        elif len(items) > self.max_lines:
            violations.add("items", f"must contain at most {self.max_lines} lines")
            items = []
        merged: dict[tuple[uuid.UUID, uuid.UUID | None], _MergedLine] = {}
        for index, item in enumerate(items):
            try:
                product_id = uuid.UUID(item.product_id)
            except (ValueError, AttributeError, TypeError):
                violations.add(f"items[{index}].product_id", "is not a valid product id")
                continue
            valid, variant_id = _variant_id(item.variant_id, f"items[{index}].variant_id", violations)
            if not valid:
                continue
            if not 1 <= item.quantity <= self.max_quantity:
                violations.add(f"items[{index}].quantity", f"must be between 1 and {self.max_quantity}")
                continue
            # The same product (variant) twice is one line with the quantities added up.
            first = merged.get((product_id, variant_id))
            if first is None:
                merged[(product_id, variant_id)] = _MergedLine(index, product_id, item.quantity, variant_id)
                continue
            total = first.quantity + item.quantity
            if total > self.max_quantity:
                violations.add(
                    f"items[{index}].quantity",
                    f"the lines for this product add up to {total}, more than {self.max_quantity}",
                )
            merged[(product_id, variant_id)] = _MergedLine(first.index, product_id, total, variant_id)

        check_payment_token(request.payment_token, violations)
        address = _validate_address(request.shipping_address, violations)
        check_key_and_wait(request.idempotency_key, request.wait_seconds, violations)
        violations.raise_if_any()
        return list(merged.values()), address

    async def _by_key(self, account_id: uuid.UUID, key: str) -> Order | None:
        async with snapshot(self.sessions) as session:
            return await session.scalar(
                queries.with_details().where(Order.account_id == account_id, Order.idempotency_key == key)
            )


def build_order(
    order_id: uuid.UUID,
    *,
    lines: Sequence[tuple[uuid.UUID, int, ProductInfo, uuid.UUID | None]],
    amounts: pricing.Breakdown,
    payment_token: str,
    address: dict[str, str],
    key: str | None,
    request_hash: str | None,
    account_id: uuid.UUID | None,
    email: str | None = None,
    cart_id: uuid.UUID | None = None,
    shipping_method: str | None = None,
    coupon_code: str | None = None,
) -> Order:
    """A new order and its lines (product, quantity, the product or variant's price and name, the
    variant), priced as given (one currency: the first line's)."""
    order = Order(
        id=order_id,
        account_id=account_id,
        email=email,
        cart_id=cart_id,
        currency=lines[0][2].currency,
        subtotal_minor=amounts.subtotal,
        discount_minor=amounts.discount,
        shipping_minor=amounts.shipping,
        tax_minor=amounts.tax,
        total_minor=amounts.total,
        shipping_method=shipping_method,
        coupon_code=coupon_code,
        payment_token=payment_token,
        shipping_address=address,
        idempotency_key=key,
        request_hash=request_hash,
        saga_pending=[],
    )
    order.items = [
        OrderItem(
            line_no=number,
            product_id=product_id,
            variant_id=variant_id,
            sku=product.sku,
            name=product.name,
            unit_price_minor=product.price_minor,
            quantity=quantity,
            line_total_minor=product.price_minor * quantity,
        )
        for number, (product_id, quantity, product, variant_id) in enumerate(lines, start=1)
    ]
    return order


def check_payment_token(token: str, violations: Violations) -> None:
    if not token.strip():
        violations.add("payment_token", "is required")
    elif len(token) > MAX_PAYMENT_TOKEN_LENGTH or has_control_characters(token):
        violations.add("payment_token", "is not a valid payment token")


def check_key_and_wait(key: str, wait_seconds: int, violations: Violations) -> None:
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        violations.add("idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    elif has_control_characters(key):
        violations.add("idempotency_key", "must not contain control characters")
    if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
        violations.add("wait_seconds", f"must be between 0 and {MAX_WAIT_SECONDS}")


def _validate_address(raw: dict[str, str], violations: Violations) -> dict[str, str]:
    return check_address(raw, violations, "shipping_address")


def _request_hash(lines: list[_MergedLine], token: str, address: dict[str, str]) -> str:
    """The payload's fingerprint: what must match for a key's retry to be the same request."""
    canonical = {
        "items": sorted(
            [str(line.product_id), line.quantity, *([str(line.variant_id)] if line.variant_id else [])]
            for line in lines
        ),
        "payment_token": token,
        "shipping_address": address,
    }
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _variant_id(raw: str, field: str, violations: Violations) -> tuple[bool, uuid.UUID | None]:
    """Whether the variant a line names is well-formed (a violation recorded when not), and it
    (None when the line names none)."""
    if not raw:
        return True, None
    try:
        return True, uuid.UUID(raw)
    except (ValueError, AttributeError, TypeError):
        violations.add(field, "is not a valid variant id")
        return False, None


def _variant(
    line: _MergedLine, product: ProductInfo, violations: Violations
) -> tuple[uuid.UUID | None, ProductInfo] | None:
    """`variant_of` the line; None with a violation naming its variant when there is none."""
    try:
        return variant_of(product, line.variant_id)
    except NoSuchVariant as exc:
        violations.add(f"items[{line.index}].variant_id", str(exc))
        return None


def _price(
    lines: list[_MergedLine], products: dict[str, ProductInfo]
) -> list[tuple[_MergedLine, ProductInfo]]:
    """Every line priced by its variant (the product's only one when it names none), as a
    ProductInfo of that variant; lines of one variant merged."""
    violations = Violations()
    priced: dict[tuple[uuid.UUID, uuid.UUID | None], tuple[_MergedLine, ProductInfo]] = {}
    for line in lines:
        product = products.get(str(line.product_id))
        field = f"items[{line.index}].product_id"
        if product is None:
            violations.add(field, "no such product")
            continue
        if product.archived:
            violations.add(field, "this product is no longer sold")
            continue
        chosen = _variant(line, product, violations)
        if chosen is None:
            continue
        vid, info = chosen
        earlier = priced.get((line.product_id, vid))
        quantity = line.quantity + (earlier[0].quantity if earlier else 0)
        index = earlier[0].index if earlier else line.index
        priced[(line.product_id, vid)] = (_MergedLine(index, line.product_id, quantity, vid), info)
    violations.raise_if_any()
    currencies = {product.currency for _, product in priced.values()}
    if len(currencies) > 1:
        raise InvalidArgument.field(
            "items", f"the products are priced in {len(currencies)} currencies; one order takes one"
        )
    return list(priced.values())


def replay(earlier: Order, request_hash: str | None) -> Placed:
    if earlier.request_hash != request_hash:
        raise AlreadyExists(
            "this idempotency key was already used for a different order", field="idempotency_key"
        )
    return Placed(earlier, replay=True)
