"""Waiting for an order to settle (CreateOrder's `wait_seconds`) without polling the database.

The transaction that moves an order to CONFIRMED or CANCELLED also sends a NOTIFY on
`SETTLED_CHANNEL` with the order's id (`notify_settled`); PostgreSQL delivers it when that
transaction commits. `SettledOrders` holds one LISTEN connection per process and wakes the
requests waiting on that id, however many there are. A waiter registers before it reads the
order, so a transition that commits in between still wakes it; for an order the request is
placing, before the order is committed, so it need not read the order until it is woken.
Without a listener connection (the database is away, or the process never started one) a waiter
is simply not woken early: it answers at its deadline with the order as it is then; on
reconnecting, every waiter reads its order again, for what it may have missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from order import domain
from order.models import Order
from servicekit.db import driver, listen
from servicekit.watchers import Watchers

log = logging.getLogger(__name__)

SETTLED_CHANNEL = "order_settled"
SETTLED = frozenset({domain.Status.CONFIRMED.value, domain.Status.CANCELLED.value})


async def notify_settled(session: AsyncSession, order_id: uuid.UUID) -> None:
    """Tell the waiters of `order_id` it settled, when the session's transaction commits."""
    await (await driver(session)).execute("SELECT pg_notify($1, $2)", SETTLED_CHANNEL, str(order_id))


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

    def watching(self, order_id: uuid.UUID) -> contextlib.AbstractContextManager[asyncio.Event]:
        """A waiter for `order_id` for the life of the `with` block. Entered before the order is
        committed, it hears every transition of it: `until_settled(..., woken=)` then has nothing
        to read before the first notice."""
        return self._waiters.watching(str(order_id), asyncio.Event())

    async def until_settled(
        self,
        order_id: uuid.UUID,
        seconds: float,
        read: Callable[[], Awaitable[Order]],
        *,
        woken: asyncio.Event | None = None,
    ) -> Order:
        """The order (as `read` returns it) once it is CONFIRMED or CANCELLED, or as it is after
        `seconds`; never waits much longer than `seconds` plus one read. `woken`: the waiter of
        `watching`, entered before the order was committed (the order is then read only once it
        settles or the time runs out); without it a waiter is registered before the first read."""
        deadline = time.monotonic() + seconds
        if woken is not None:
            heard = await self._heard(woken, deadline)
            return await self._read_until_settled(woken, deadline, read, timed_out=not heard)
        with self.watching(order_id) as woken:
            return await self._read_until_settled(woken, deadline, read, timed_out=False)

    async def _read_until_settled(
        self,
        woken: asyncio.Event,
        deadline: float,
        read: Callable[[], Awaitable[Order]],
        *,
        timed_out: bool,
    ) -> Order:
        while True:
            woken.clear()
            order = await read()
            if order.status in SETTLED or time.monotonic() >= deadline:
                self.ran_out += timed_out
                return order
            timed_out = not await self._heard(woken, deadline)

    @staticmethod
    async def _heard(woken: asyncio.Event, deadline: float) -> bool:
        """Whether a notice came before the deadline."""
        try:
            await asyncio.wait_for(woken.wait(), max(deadline - time.monotonic(), 0))
        except TimeoutError:
            return False
        return True

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
