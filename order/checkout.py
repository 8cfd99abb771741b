"""Checking a cart out: its order goes through the same saga as `CreateOrder`'s, with the same
idempotency and wait. Every line is priced again from the catalog; checkout refuses
(INVALID_ARGUMENT on `cart_token`, the cart's problems saying why) when a price changed since it
was shown, a product is archived or out of stock, or the coupon no longer applies. The coupon's
use is claimed in the transaction that creates the order: a refused claim rolls the order (and
its payment command) back. A guest (no caller) checks out with the cart's e-mail.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from order import queries, shop
from order.carts import Carts, CartView, customer_key, fingerprint_of
from order.checks import account_of
from order.models import Cart, Order
from order.placing import (
    NewOrder,
    Placed,
    Placement,
    build_order,
    check_key_and_wait,
    check_payment_token,
    replay,
)
from servicekit.context import Caller
from servicekit.db import reads, snapshot, transaction
from servicekit.errors import Aborted, InvalidArgument, NotFound, Violations

log = logging.getLogger(__name__)

GUEST_KEY_CONSTRAINT = "uq_orders_cart_id_idempotency_key"
ACCOUNT_KEY_CONSTRAINT = "uq_orders_account_id_idempotency_key"


@dataclass(frozen=True)
class CheckoutRequest:
    cart_token: str
    payment_token: str
    idempotency_key: str = ""
    wait_seconds: int = 0


def _request_hash(cart_id: uuid.UUID, payment_token: str) -> str:
    return hashlib.sha256(f"{cart_id}\n{payment_token}".encode()).hexdigest()


def _refuse(why: str) -> InvalidArgument:
    return InvalidArgument.field("cart_token", why)


@dataclass(kw_only=True, eq=False)
class Checkout:
    carts: Carts
    placement: Placement

    async def checkout(
        self, caller: Caller | None, request: CheckoutRequest, *, order_id: uuid.UUID | None = None
    ) -> Placed | NewOrder:
        """The cart's order placed (under `order_id`, a new id by default), or the one an earlier
        checkout of it placed."""
        violations = Violations()
        check_payment_token(request.payment_token, violations)
        check_key_and_wait(request.idempotency_key, request.wait_seconds, violations)
        violations.raise_if_any()
        account_id = None
        if caller is not None:
            self.placement.check_verified(caller)
            account_id = account_of(caller)
        key = request.idempotency_key or None
        sessions = self.placement.sessions

        # The cart with its lines is one statement, which needs no transaction around it (an account
        # without an open cart is given its empty one, by one idempotent INSERT of its own).
        async with reads(sessions) as session:
            cart = await self.carts.find(session, caller, request.cart_token, lock=False, open_only=False)
        request_hash = _request_hash(cart.id, request.payment_token) if key else None
        if cart.order_id is not None:
            # Checked out already: the same request again is answered with its order.
            earlier = await self._earlier(cart, account_id, key)
            if earlier is None:
                raise NotFound("cart not found")
            return replay(earlier, request_hash)

        view = await self.carts.price(caller, cart, request.cart_token)
        await self.carts.remember_shown(view)
        self._check(view, guest=account_id is None)
        valid, why = await self.placement.payments.validate_token(caller, request.payment_token)
        if not valid:
            raise InvalidArgument.field("payment_token", why or "is not a valid payment token")

        order_id = order_id or uuid.uuid4()
        try:
            async with transaction(sessions) as session:
                locked = await self.carts.find(
                    session, caller, request.cart_token, lock=True, open_only=False
                )
                if locked.order_id is not None:
                    earlier = await self._earlier(locked, account_id, key)
                    if earlier is None:
                        raise NotFound("cart not found")
                    return replay(earlier, request_hash)
                if fingerprint_of(locked) != fingerprint_of(view.cart):
                    raise Aborted("the cart changed during checkout; look at it again and retry")
                order = self._order(view, order_id, account_id, request, key, request_hash)
                await self.placement.saga.start(session, order, datetime.now(UTC))
                if view.coupon is not None:
                    refused = await shop.claim_coupon(
                        session, view.coupon.id, order_id, customer_key(account_id, view.cart.email)
                    )
                    if refused:
                        raise InvalidArgument.field("cart_token", f"COUPON_INVALID: {refused}")
                locked.order_id = order_id
        except IntegrityError as exc:
            if key is None or not any(
                c in str(exc.orig) for c in (GUEST_KEY_CONSTRAINT, ACCOUNT_KEY_CONSTRAINT)
            ):
                raise
            earlier = await self._earlier(cart, account_id, key)
            if earlier is None:
                raise
            return replay(earlier, request_hash)
        log.info("cart checked out", extra={"order_id": str(order_id), "lines": len(view.lines)})
        return NewOrder(order_id)

    def _check(self, view: CartView, *, guest: bool) -> None:
        cart = view.cart
        if not view.lines:
            raise _refuse("the cart is empty")
        if view.problems:
            listed = "; ".join(f"{p.code}: {p.message}" for p in view.problems)
            raise _refuse(f"the cart cannot be checked out as it is (see its problems): {listed}")
        if guest and not cart.email:
            raise _refuse("a guest checkout needs the cart's e-mail (setCartEmail)")
        if not cart.shipping_address:
            raise _refuse("the cart has no shipping address (setCartShippingAddress)")
        if view.method is None:
            raise _refuse("the cart has no shipping method (setCartShippingMethod)")
        if view.breakdown.total <= 0:
            # Every order is paid through the saga's payment step, and a payment needs an amount.
            raise _refuse("the order's total is 0: there is nothing to pay, so it cannot be checked out")

    def _order(
        self,
        view: CartView,
        order_id: uuid.UUID,
        account_id: uuid.UUID | None,
        request: CheckoutRequest,
        key: str | None,
        request_hash: str | None,
    ) -> Order:
        cart = view.cart
        assert cart.shipping_address is not None
        assert view.method is not None
        return build_order(
            order_id,
            account_id=account_id,
            email=cart.email,
            cart_id=cart.id,
            lines=[
                (p.line.product_id, p.line.quantity, p.product, _variant_uuid(p.line.variant_id))
                for p in view.lines
                if p.product
            ],
            amounts=view.breakdown,
            payment_token=request.payment_token,
            address=cart.shipping_address,
            key=key,
            request_hash=request_hash,
            shipping_method=view.method.code,
            coupon_code=view.coupon.code if view.coupon else None,
        )

    async def _earlier(self, cart: Cart, account_id: uuid.UUID | None, key: str | None) -> Order | None:
        """The order an earlier checkout with this key placed: the account's, or this cart's for a guest."""
        if key is None:
            return None
        scope = Order.account_id == account_id if account_id is not None else Order.cart_id == cart.id
        async with snapshot(self.placement.sessions) as session:
            return await session.scalar(queries.with_details().where(scope, Order.idempotency_key == key))


def _variant_uuid(variant_id: str | None) -> uuid.UUID | None:
    """A cart line's variant (text in the cart) as the order line's."""
    return uuid.UUID(variant_id) if variant_id else None
