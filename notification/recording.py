"""Recording what an event calls for, in the consumer's inbox transaction: nothing is sent here.

A PENDING e-mail, and a PENDING delivery per webhook subscribed to the event; the delivery loops
send them. Recording the same event twice changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification.models import EMAIL, PENDING, Notification, Webhook, WebhookDelivery


@dataclass(frozen=True)
class NewNotification:
    """An e-mail an event calls for, before it is sent."""

    account_id: uuid.UUID
    event_id: str
    event_type: str
    template: str
    variables: dict[str, Any]
    # Known from the event itself (account.registered); otherwise looked up when sending.
    recipient: str
    source_topic: str
    envelope: bytes


async def record_notification(session: AsyncSession, new: NewNotification) -> bool:
    """Stage the e-mail; False when this event already has one for this account."""
    inserted = await session.scalar(
        pg_insert(Notification)
        .values(
            id=uuid.uuid4(),
            account_id=new.account_id,
            event_id=new.event_id,
            event_type=new.event_type,
            channel=EMAIL,
            template=new.template,
            recipient=new.recipient,
            status=PENDING,
            variables=new.variables,
            source_topic=new.source_topic,
            envelope=new.envelope,
        )
        .on_conflict_do_nothing(index_elements=["event_id", "channel", "account_id"])
        .returning(Notification.id)
    )
    return inserted is not None


async def record_webhook_deliveries(
    session: AsyncSession, *, event_id: str, event_type: str, body: bytes
) -> int:
    """One PENDING delivery per active webhook subscribed to the event type; returns how many."""
    subscribed = select(
        func.gen_random_uuid(),
        Webhook.id,
        literal(event_id),
        literal(event_type),
        literal(body),
        literal(PENDING),
    ).where(Webhook.deleted_at.is_(None), Webhook.events.any_() == event_type)
    result = await session.execute(
        pg_insert(WebhookDelivery)
        .from_select(["id", "webhook_id", "event_id", "event_type", "body", "status"], subscribed)
        .on_conflict_do_nothing(index_elements=["webhook_id", "event_id"])
        .returning(WebhookDelivery.id)
    )
    return len(result.all())
