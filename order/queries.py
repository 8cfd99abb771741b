"""The order rows every use case reads: with their items and history, or locked for a change."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from order.models import Order
from servicekit.db import snapshot
from servicekit.errors import NotFound


def with_details() -> Select[Order]:
    """Orders with their items and their history."""
    return select(Order).options(selectinload(Order.items), selectinload(Order.history))


async def lock(session: AsyncSession, order_id: uuid.UUID) -> Order | None:
    """The order and its items, row-locked for the rest of the session's transaction."""
    return await session.scalar(
        select(Order)
        .where(Order.id == order_id)
        .with_for_update()
        .options(selectinload(Order.items))
        .execution_options(populate_existing=True)
    )


async def load(sessions: async_sessionmaker[AsyncSession], order_id: uuid.UUID) -> Order:
    """The order with its items and history, or NOT_FOUND."""
    # One snapshot for the order, its items and its history: a status always with its history.
    async with snapshot(sessions) as session:
        order = await session.scalar(with_details().where(Order.id == order_id))
    if order is None:
        raise NotFound("order not found")
    return order
