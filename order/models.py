from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from servicekit.db import new_metadata, one_of
from servicekit.inbox import inbox_table
from servicekit.outbox import outbox_table

STATUSES = ("PENDING", "AWAITING_PAYMENT", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED")
REASONS = (
    "OUT_OF_STOCK",
    "PAYMENT_DECLINED",
    "PAYMENT_UNAVAILABLE",
    "EXPIRED",
    "CUSTOMER_CANCELLED",
    "ADMIN_CANCELLED",
    "INVENTORY_UNAVAILABLE",
)
STEPS = ("RESERVE_AND_AUTHORIZE", "COMMIT_STOCK", "COMPENSATE")


class Base(DeclarativeBase):
    metadata = new_metadata()


class Order(Base):
    """An order and the persisted state of its saga (step, attempts, deadline)."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(one_of("status", STATUSES), name="status_known"),
        CheckConstraint(
            f"(status = 'CANCELLED') = (cancellation_reason IS NOT NULL) AND "
            f"(cancellation_reason IS NULL OR {one_of('cancellation_reason', REASONS)})",
            name="cancellation_reason_iff_cancelled",
        ),
        CheckConstraint(f"saga_step IS NULL OR {one_of('saga_step', STEPS)}", name="saga_step_known"),
        CheckConstraint("(saga_step IS NULL) = (saga_deadline_at IS NULL)", name="saga_deadline_with_step"),
        CheckConstraint("total_minor >= 0", name="total_not_negative"),
        CheckConstraint("(idempotency_key IS NULL) = (request_hash IS NULL)", name="key_with_hash"),
        CheckConstraint("account_id IS NOT NULL OR email IS NOT NULL", name="account_or_email"),
        CheckConstraint(
            "subtotal_minor >= 0 AND discount_minor >= 0 AND shipping_minor >= 0 AND tax_minor >= 0",
            name="amounts_not_negative",
        ),
        # Scoped to the caller: two customers may use the same key.
        UniqueConstraint("account_id", "idempotency_key", name="uq_orders_account_id_idempotency_key"),
        # A guest's key is scoped to the cart checked out (a guest has no account).
        Index(
            "uq_orders_cart_id_idempotency_key",
            "cart_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("account_id IS NULL"),
        ),
        Index("ix_orders_email_created_at", "email", text("created_at DESC")),
        Index("ix_orders_total_minor", text("total_minor DESC"), text("id DESC")),
        Index("ix_orders_account_id_created_at", "account_id", text("created_at DESC"), text("id DESC")),
        Index("ix_orders_created_at", text("created_at DESC"), text("id DESC")),
        Index("ix_orders_status_created_at", "status", text("created_at DESC"), text("id DESC")),
        # What the saga timer scans: only sagas in flight.
        Index(
            "ix_orders_saga_deadline_at", "saga_deadline_at", postgresql_where=text("saga_step IS NOT NULL")
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # NULL for a guest's order, which has its `email` instead.
    account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Where a guest's e-mails go (and what `guestOrder` checks); a checkout's cart e-mail.
    email: Mapped[str | None] = mapped_column(Text)
    # The cart checked out, if any: a guest's idempotency keys are scoped to it.
    cart_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(Text)
    cancellation_reason: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    # The breakdown (`order.pricing`): total = subtotal - discount + shipping (+ tax unless included).
    subtotal_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    discount_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    shipping_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    tax_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    total_minor: Mapped[int] = mapped_column(BigInteger)
    shipping_method: Mapped[str | None] = mapped_column(Text)
    coupon_code: Mapped[str | None] = mapped_column(Text)
    # The provider's card token, needed to re-send AuthorizePayment; cleared once the payment
    # step is over. Never logged, never returned.
    payment_token: Mapped[str | None] = mapped_column(Text)
    payment_id: Mapped[str | None] = mapped_column(Text)
    shipping_address: Mapped[dict] = mapped_column(JSONB)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    request_hash: Mapped[str | None] = mapped_column(Text)
    saga_step: Mapped[str | None] = mapped_column(Text)
    saga_attempts: Mapped[int] = mapped_column(Integer, default=0)
    saga_deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the current step's command (or compensations) last went out: step durations are measured from it.
    saga_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the current step still waits for: the unanswered commands of RESERVE_AND_AUTHORIZE
    # (RESERVE_STOCK, AUTHORIZE_PAYMENT), or the unanswered compensations of COMPENSATE.
    saga_pending: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    items: Mapped[list[OrderItem]] = relationship(
        order_by="OrderItem.line_no", lazy="raise", cascade="all, delete-orphan"
    )
    history: Mapped[list[OrderHistory]] = relationship(
        order_by="OrderHistory.id", lazy="raise", cascade="all, delete-orphan"
    )


class OrderItem(Base):
    """One line, priced from the catalog when the order was placed."""

    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity BETWEEN 1 AND 1000", name="quantity_in_range"),
        CheckConstraint(
            "unit_price_minor >= 0 AND line_total_minor = unit_price_minor * quantity", name="line_total"
        ),
        # One line per product variant (orders placed before variants: per product, variant NULL).
        UniqueConstraint(
            "order_id", "product_id", "variant_id", name="uq_order_items_order_id_product_id_variant_id"
        ),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # The catalog's variant ordered; NULL for orders placed before products had variants.
    variant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    sku: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    line_total_minor: Mapped[int] = mapped_column(BigInteger)


class OrderHistory(Base):
    """The audit trail: every status an order entered, when, why and by whom."""

    __tablename__ = "order_history"
    __table_args__ = (
        CheckConstraint(one_of("status", STATUSES), name="status_known"),
        Index("ix_order_history_order_id", "order_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("orders.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    # Account id of whoever made a manual transition; NULL for the saga's own.
    changed_by: Mapped[str | None] = mapped_column(Text)
    # clock_timestamp(): entries written in one transaction still tell their order in time.
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.clock_timestamp())


class ShippingMethod(Base):
    """A way to ship, its price in one currency, free above `free_over_minor` (the discounted
    subtotal), to the listed countries (none listed: everywhere)."""

    __tablename__ = "shipping_methods"
    __table_args__ = (
        CheckConstraint(
            "price_minor >= 0 AND (free_over_minor IS NULL OR free_over_minor >= 0)", name="prices"
        ),
    )

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    free_over_minor: Mapped[int | None] = mapped_column(BigInteger)
    countries: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TaxRate(Base):
    """A destination country's tax rate in percent (20 = 20%)."""

    __tablename__ = "tax_rates"
    __table_args__ = (CheckConstraint("rate >= 0 AND rate <= 100", name="rate_in_range"),)

    country: Mapped[str] = mapped_column(Text, primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Coupon(Base):
    """A discount code. `used` counts the orders holding a use: it is raised by a conditional
    UPDATE in the order's own transaction, so that the limit holds under concurrency."""

    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint("kind IN ('PERCENT', 'FIXED')", name="kind_known"),
        CheckConstraint(
            "used >= 0 AND (usage_limit IS NULL OR used <= usage_limit)", name="used_within_limit"
        ),
        Index("ix_coupons_created_at", text("created_at DESC"), text("id DESC")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Upper case; codes are matched case-insensitively.
    code: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(Text)
    percent: Mapped[Decimal | None] = mapped_column(Numeric)
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    # FIXED coupons and minimum subtotals are in one currency; a PERCENT coupon without one fits any.
    currency: Mapped[str | None] = mapped_column(Text)
    min_subtotal_minor: Mapped[int | None] = mapped_column(BigInteger)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    usage_limit: Mapped[int | None] = mapped_column(Integer)
    per_customer_limit: Mapped[int | None] = mapped_column(Integer)
    used: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CouponUse(Base):
    """One order's use of a coupon, by customer (account id or `email:<address>`); deleted when
    the order is cancelled, which gives the use back."""

    __tablename__ = "coupon_uses"
    __table_args__ = (Index("ix_coupon_uses_coupon_id_customer", "coupon_id", "customer"),)

    order_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    coupon_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("coupons.id", ondelete="CASCADE"))
    customer: Mapped[str] = mapped_column(Text)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Cart(Base):
    """A shopper's cart: a guest's, addressed by a bearer token (only its hash is kept), or an
    account's open cart. Closed by its checkout (`order_id`); gone once `expires_at` passes."""

    __tablename__ = "carts"
    __table_args__ = (
        CheckConstraint("token_hash IS NOT NULL OR account_id IS NOT NULL", name="addressable"),
        # One open cart per account.
        Index(
            "uq_carts_open_account_id",
            "account_id",
            unique=True,
            postgresql_where=text("account_id IS NOT NULL AND token_hash IS NULL AND order_id IS NULL"),
        ),
        Index("ix_carts_expires_at", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str | None] = mapped_column(Text, unique=True)
    account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    email: Mapped[str | None] = mapped_column(Text)
    shipping_address: Mapped[dict | None] = mapped_column(JSONB)
    shipping_method: Mapped[str | None] = mapped_column(Text)
    coupon_code: Mapped[str | None] = mapped_column(Text)
    order_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    lines: Mapped[list[CartLine]] = relationship(
        order_by="CartLine.added_at", lazy="raise", cascade="all, delete-orphan"
    )


class CartLine(Base):
    """A product in a cart and the unit price last shown for it (what checkout holds it to)."""

    __tablename__ = "cart_lines"
    __table_args__ = (
        CheckConstraint("quantity BETWEEN 1 AND 1000", name="quantity_in_range"),
        # One line per product variant; a line without one (a catalog without variants) is the
        # product's only line.
        Index(
            "uq_cart_lines_cart_id_product_id_variant_id",
            "cart_id",
            "product_id",
            text("coalesce(variant_id, '')"),
            unique=True,
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    cart_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("carts.id", ondelete="CASCADE"))
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    variant_id: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(Integer)
    shown_price_minor: Mapped[int | None] = mapped_column(BigInteger)
    shown_currency: Mapped[str | None] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.clock_timestamp())


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
metadata = Base.metadata
