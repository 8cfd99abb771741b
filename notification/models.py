from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from servicekit.db import new_metadata
from servicekit.inbox import inbox_table
from servicekit.outbox import outbox_table

EMAIL = "EMAIL"
PENDING = "PENDING"
SENT = "SENT"
FAILED = "FAILED"
DELIVERED = "DELIVERED"
CANCELLED = "CANCELLED"
# The account id of an e-mail to a guest (an order placed without an account): it goes to the
# address the event carried, and no account owns it.
GUEST = uuid.UUID(int=0)


class Base(DeclarativeBase):
    metadata = new_metadata()


class Notification(Base):
    """One message to one account about one event: at most one per (event, channel, account)."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_id", "channel", "account_id"),
        CheckConstraint("channel IN ('EMAIL')", name="channel_known"),
        CheckConstraint("status IN ('PENDING', 'SENT', 'FAILED')", name="status_known"),
        Index("ix_notifications_account_id_created_at", "account_id", "created_at", "id"),
        Index("ix_notifications_due", "next_attempt_at", postgresql_where=text("status = 'PENDING'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_id: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(Text, default=EMAIL)
    template: Mapped[str] = mapped_column(Text)
    # Filled in at the first send attempt (the account service is asked then, not by the consumer).
    recipient: Mapped[str] = mapped_column(Text, default="", server_default="")
    subject: Mapped[str] = mapped_column(Text, default="", server_default="")
    status: Mapped[str] = mapped_column(Text, default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The template's variables, taken from the event when it was consumed.
    variables: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # The event as it was consumed, for the dead-letter topic should the message fail for good.
    source_topic: Mapped[str] = mapped_column(Text)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Webhook(Base):
    """An endpoint of the shop's other systems; deleted ones stay for their delivery log."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_created_at", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(ARRAY(Text))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The signing secret, encrypted (Fernet); shown in clear only in CreateWebhook's answer.
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def active(self) -> bool:
        return self.deleted_at is None


class WebhookDelivery(Base):
    """One event sent to one webhook, with its attempts: the delivery log."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        CheckConstraint("status IN ('PENDING', 'DELIVERED', 'FAILED', 'CANCELLED')", name="status_known"),
        Index("ix_webhook_deliveries_webhook_id_created_at", "webhook_id", "created_at", "id"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'PENDING'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    webhook_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    # The JSON body, fixed at the first attempt so that every retry sends the same bytes.
    body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(Text, default=PENDING)
    response_status: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
metadata = Base.metadata
