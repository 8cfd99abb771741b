"""Erasing a deleted account's personal data from the notification service (`account.deleted`).

What it copied: each e-mail's recipient, subject and template variables (a name, a shipping
address, a link) and the event it was made from (kept for the dead-letter topic); the JSON bodies
of the webhook deliveries whose event names the account (kept so that every retry sends the same
bytes); and the dead-letter copies of its failed e-mails in the outbox. The e-mails' rows stay,
emptied, as the record that something was sent when; a PENDING one is marked FAILED, so nothing
goes to the deleted account any more (the mail loop records an outcome only over a PENDING row,
so a send in flight cannot write the recipient back). A webhook body keeps the event's identity,
and its `data` becomes `{"account_id": ..., "erased": true}`: a pending delivery still tells the
shop's systems that the event happened.

Handled twice, it finds everything already erased: the same result.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import String, delete, func, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ecommerce.events.v1 import account_events_pb2, envelope_pb2
from notification.models import FAILED, PENDING, Notification, outbox
from servicekit.inbox import Handler
from servicekit.kafka import unpack
from servicekit.topics import AccountEvent

ERASED_ERROR = "the account was deleted"


async def erase_account(session: AsyncSession, account_id: uuid.UUID) -> None:
    await session.execute(
        update(Notification)
        .where(Notification.account_id == account_id, Notification.status == PENDING)
        .values(status=FAILED, last_error=ERASED_ERROR)
    )
    await session.execute(
        update(Notification)
        .where(Notification.account_id == account_id)
        .values(recipient="", subject="", variables={}, envelope=b"")
    )
    dead_letters = select(literal("dead-letter:") + func.cast(Notification.id, String)).where(
        Notification.account_id == account_id
    )
    await session.execute(
        delete(outbox).where(outbox.c.event_id.in_(dead_letters), outbox.c.published_at.is_not(None))
    )
    await _erase_webhook_bodies(session, str(account_id))


# The body is the JSON webhook_body wrote, as bytes; `data.account_id` names the account.
ERASE_WEBHOOK_BODIES = text(
    """
    UPDATE webhook_deliveries
    SET body = convert_to(
        jsonb_set(
            convert_from(body, 'UTF8')::jsonb,
            '{data}',
            jsonb_build_object('account_id', CAST(:account_id AS text), 'erased', true)
        )::text,
        'UTF8'
    )
    WHERE convert_from(body, 'UTF8')::jsonb #>> '{data,account_id}' = :account_id
    """
)


async def _erase_webhook_bodies(session: AsyncSession, account_id: str) -> None:
    """Every delivery body whose event's data names the account keeps only the event's identity."""
    await session.execute(ERASE_WEBHOOK_BODIES, {"account_id": account_id})


async def on_account_deleted(session: AsyncSession, envelope: envelope_pb2.EventEnvelope) -> None:
    message: Any = unpack(envelope, account_events_pb2.AccountDeleted)
    await erase_account(session, uuid.UUID(message.account_id))


def handlers() -> dict[str, Handler]:
    return {AccountEvent.DELETED: on_account_deleted}
