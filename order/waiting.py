"""Waiting for an order to settle (CreateOrder's `wait_seconds`) without polling the database.

The transaction that moves an order to CONFIRMED or CANCELLED also sends a NOTIFY on
`SETTLED_CHANNEL` with the order's id (`notify_settled`); PostgreSQL delivers it when that
transaction commits. `SettledOrders` holds one LISTEN connection per process and wakes the
requests waiting on that id, however many there are. A waiter registers before it reads the
order, so a transition that commits in between still wakes it. Without a listener connection
(the database is away, or the process never started one) a waiter is simply not woken early:
it answers at its deadline with the order as it is then; on reconnecting, every waiter reads
its order again, for what it may have missed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from order import domain
from order.models import Order
from servicekit.db import listen
from servicekit.watchers import Watchers

log = logging.getLogger(__name__)

SETTLED_CHANNEL = "order_settled"
SETTLED = frozenset({domain.Status.CONFIRMED.value, domain.Status.CANCELLED.value})


async def notify_settled(session: AsyncSession, order_id: uuid.UUID) -> None:
    """Tell the waiters of `order_id` it settled, when the session's transaction commits."""
    await session.execute(select(func.pg_notify(SETTLED_CHANNEL, str(order_id))))


class SettledOrders:
    """The requests waiting for orders to settle, by order id, and the one connection that
    listens for the settling of all of them (`run`, for the life of the process)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._waiters: Watchers[str, asyncio.Event] = Watchers()
        # Waits that ran out of time before their order settled, or before a notice woke them.
        self.ran_out = 0

    @property
    def waiting(self) -> int:
        """How many orders have a request waiting for them."""
        return len(self._waiters)

    async def until_settled(
        self, order_id: uuid.UUID, seconds: float, read: Callable[[], Awaitable[Order]]
    ) -> Order:
        """The order (as `read` returns it) once it is CONFIRMED or CANCELLED, or as it is after
        `seconds`; never waits much longer than `seconds` plus one read."""
        deadline = time.monotonic() + seconds
        timed_out = False
        with self._waiters.watching(str(order_id), asyncio.Event()) as woken:
            while True:
                woken.clear()
                order = await read()
                remaining = deadline - time.monotonic()
                if order.status in SETTLED or remaining <= 0:
                    self.ran_out += timed_out
                    return order
                try:
                    await asyncio.wait_for(woken.wait(), remaining)
                except TimeoutError:
                    timed_out = True

    def _wake(self, order_id: str) -> None:
        for event in self._waiters.get(order_id, ()):
            event.set()

    def _wake_all(self) -> None:
        for group in self._waiters.values():
            for event in group:
                event.set()

    async def run(self) -> None:
        """Listen on `SETTLED_CHANNEL`, reconnecting after a lost connection."""
        await listen(
            self.database_url,
            SETTLED_CHANNEL,
            self._wake,
            on_connect=self._wake_all,  # what settled while nobody listened
            name="settled-order listener (waiters answer at their deadline meanwhile)",
        )
