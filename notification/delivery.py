"""What both delivery loops share: claiming due rows under a lease, backing off, waiting for work.

A loop claims due rows with `FOR UPDATE SKIP LOCKED` and a lease, so several processes share the
work and a crashed one's rows come back when the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notification.models import PENDING, Notification, WebhookDelivery
from servicekit.db import transaction

Due = TypeVar("Due", Notification, WebhookDelivery)


@dataclass(frozen=True)
class Backoff:
    """Exponential: `initial`, twice that, four times ... up to `maximum`, with 10% jitter."""

    initial: float
    maximum: float
    max_attempts: int

    def delay(self, attempts: int) -> float:
        base = min(self.maximum, self.initial * 2 ** max(0, attempts - 1))
        return base * random.uniform(0.9, 1.1)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


async def claim(
    sessions: async_sessionmaker[AsyncSession], entity: type[Due], *, batch_size: int, lease: timedelta
) -> list[Due]:
    """Take up to a batch of due rows: counted as an attempt, hidden from others for a lease."""
    due = (
        select(entity.id)
        .where(entity.status == PENDING, entity.next_attempt_at <= func.now())
        .order_by(entity.next_attempt_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    async with transaction(sessions) as session:
        rows = await session.scalars(
            update(entity)
            .where(entity.id.in_(due))
            .values(attempts=entity.attempts + 1, next_attempt_at=func.now() + lease)
            .returning(entity)
            .execution_options(synchronize_session=False)
        )
        return list(rows.all())


@dataclass(kw_only=True, eq=False)
class DeliveryLoop(ABC):
    """Delivers due rows a batch at a time, at once while whole batches come due; otherwise waits
    for newly recorded work (`wake`) or the poll interval, whichever comes first.

    Rows are claimed `batch_size` at a time for a `lease`; a failed attempt is due again after
    `backoff`."""

    sessions: async_sessionmaker[AsyncSession]
    backoff: Backoff
    batch_size: int
    lease: timedelta
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def wake(self) -> None:
        """New rows were recorded: look for due ones now rather than at the next poll."""
        self._wakeup.set()

    async def run(self, poll_interval: float) -> None:
        while True:
            if await self.deliver() < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), poll_interval)
                self._wakeup.clear()

    @abstractmethod
    async def deliver(self) -> int:
        """Attempt the rows that are due now; returns how many were attempted."""
