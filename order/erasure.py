"""Erasing a deleted account's personal data from its orders (`account.deleted`).

The orders stay for the shop's books: their lines, amounts, statuses and history are kept, and so
is the shipping country (what taxes were charged for). The rest of the shipping address, the
snapshot the order took of the shopper's name and street, is replaced by a placeholder. The
published `order.events` rows of those orders, which carry the same snapshot, are deleted from
the outbox (the broker has them; its retention is the documented limit, docs/security.md). An
event still waiting to be published is left to go: it is the saga's, and the order's later events
carry the placeholder.

Handled twice, it finds the placeholder already there and the rows already gone: the same result.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ecommerce.events.v1 import account_events_pb2, envelope_pb2
from order.models import Order, outbox
from servicekit.inbox import Handler
from servicekit.kafka import unpack
from servicekit.postal import ADDRESS_FIELDS
from servicekit.topics import ORDER_EVENTS, AccountEvent

ERASED = "[erased]"
# Kept: what the shop's books need of an address.
KEPT_FIELDS = ("country",)


def erased_address(address: dict[str, str]) -> dict[str, str]:
    """The address with every personal field replaced: required ones by the placeholder (an
    order's address still reads as one), optional ones emptied."""
    return {
        name: address.get(name, "") if name in KEPT_FIELDS else (ERASED if required else "")
        for name, required, _ in ADDRESS_FIELDS
    }


async def erase_account(session: AsyncSession, account_id: uuid.UUID) -> int:
    """Erase the personal fields of every order of the account; returns how many orders it has."""
    orders = list(
        (
            await session.execute(
                select(Order.id, Order.shipping_address).where(Order.account_id == account_id)
            )
        ).all()
    )
    for order_id, address in orders:
        erased = erased_address(address or {})
        if erased != address:
            await session.execute(update(Order).where(Order.id == order_id).values(shipping_address=erased))
    if orders:
        await session.execute(
            delete(outbox).where(
                outbox.c.topic == ORDER_EVENTS,
                outbox.c.key.in_([str(order_id) for order_id, _ in orders]),
                outbox.c.published_at.is_not(None),
            )
        )
    return len(orders)


async def on_account_deleted(session: AsyncSession, envelope: envelope_pb2.EventEnvelope) -> None:
    message: Any = unpack(envelope, account_events_pb2.AccountDeleted)
    await erase_account(session, uuid.UUID(message.account_id))


def handlers() -> dict[str, Handler]:
    return {AccountEvent.DELETED: on_account_deleted}
