from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    Text,
    Uuid,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from servicekit.db import new_metadata, one_of
from servicekit.inbox import inbox_table
from servicekit.outbox import outbox_table

PENDING = "PENDING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
REFUNDED = "REFUNDED"
VOIDED = "VOIDED"
STATUSES = (PENDING, SUCCEEDED, FAILED, REFUNDED, VOIDED)

DECLINED = "DECLINED"
INVALID_TOKEN = "INVALID_TOKEN"
PROVIDER_TIMEOUT = "PROVIDER_TIMEOUT"
PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
FAILURE_REASONS = (DECLINED, INVALID_TOKEN, PROVIDER_TIMEOUT, PROVIDER_UNAVAILABLE)
RETRYABLE_REASONS = frozenset({PROVIDER_TIMEOUT, PROVIDER_UNAVAILABLE})


class Base(DeclarativeBase):
    metadata = new_metadata()
    # Server-side defaults (created_at, updated_at) come back with the INSERT/UPDATE (RETURNING),
    # so that events built right after a flush can read them without a lazy load.
    __mapper_args__ = {"eager_defaults": True}


class Payment(Base):
    """The one payment of an order. PENDING while the provider is being asked."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(one_of("status", STATUSES), name="status_known"),
        CheckConstraint(
            f"failure_reason IS NULL OR {one_of('failure_reason', FAILURE_REASONS)}", name="reason_known"
        ),
        CheckConstraint("(status = 'FAILED') = (failure_reason IS NOT NULL)", name="failed_has_reason"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default=PENDING)
    provider: Mapped[str] = mapped_column(Text)
    provider_reference: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text, unique=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    failure_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Refund(Base):
    """A payment paid back in full (at most one per payment)."""

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    payment_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("payments.id"), unique=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, default="")
    # The ADMIN who refunded through the API; NULL for the saga's refunds.
    refunded_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    provider_reference: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class VoidedOrder(Base):
    """An order whose payment was voided, so that a late AuthorizePayment never charges it."""

    __tablename__ = "voided_orders"

    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SimulatedLedgerEntry(Base):
    """The simulated provider's own books: one row per completed operation and idempotency key,
    so that a retried call answers what the first one did and never charges twice, across
    restarts of this process too. A real adapter keeps nothing here."""

    __tablename__ = "simulated_ledger"
    __table_args__ = (
        PrimaryKeyConstraint("operation", "idempotency_key"),
        CheckConstraint("operation IN ('authorize', 'refund', 'void')", name="operation_known"),
        CheckConstraint("outcome IN ('succeeded', 'declined', 'invalid_token')", name="outcome_known"),
    )

    operation: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
metadata = Base.metadata
