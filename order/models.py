from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from servicekit.db import new_metadata
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


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = new_metadata()


class Order(Base):
    """An order and the persisted state of its saga (step, attempts, deadline)."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_one_of("status", STATUSES), name="status_known"),
        CheckConstraint(
            f"(status = 'CANCELLED') = (cancellation_reason IS NOT NULL) AND "
            f"(cancellation_reason IS NULL OR {_one_of('cancellation_reason', REASONS)})",
            name="cancellation_reason_iff_cancelled",
        ),
        CheckConstraint(f"saga_step IS NULL OR {_one_of('saga_step', STEPS)}", name="saga_step_known"),
        CheckConstraint("(saga_step IS NULL) = (saga_deadline_at IS NULL)", name="saga_deadline_with_step"),
        CheckConstraint("total_minor >= 0", name="total_not_negative"),
        CheckConstraint("(idempotency_key IS NULL) = (request_hash IS NULL)", name="key_with_hash"),
        # Scoped to the caller: two customers may use the same key.
        UniqueConstraint("account_id", "idempotency_key", name="uq_orders_account_id_idempotency_key"),
        Index("ix_orders_account_id_created_at", "account_id", text("created_at DESC"), text("id DESC")),
        Index("ix_orders_created_at", text("created_at DESC"), text("id DESC")),
        Index("ix_orders_status_created_at", "status", text("created_at DESC"), text("id DESC")),
        # What the saga timer scans: only sagas in flight.
        Index(
            "ix_orders_saga_deadline_at", "saga_deadline_at", postgresql_where=text("saga_step IS NOT NULL")
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(Text)
    cancellation_reason: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(Text)
    total_minor: Mapped[int] = mapped_column(BigInteger)
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
        UniqueConstraint("order_id", "product_id", name="uq_order_items_order_id_product_id"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    sku: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    line_total_minor: Mapped[int] = mapped_column(BigInteger)


class OrderHistory(Base):
    """The audit trail: every status an order entered, when, why and by whom."""

    __tablename__ = "order_history"
    __table_args__ = (
        CheckConstraint(_one_of("status", STATUSES), name="status_known"),
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


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
metadata = Base.metadata
