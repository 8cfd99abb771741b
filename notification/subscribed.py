"""Which event types some webhook subscribes to, known in memory, so that an event no webhook wants
costs no INSERT ... SELECT.

Creating or deleting a webhook sends a NOTIFY on `WEBHOOKS_CHANNEL` in its transaction, so every
notification process hears it once the change is committed. On hearing it a process forgets what it
knew (every event type counts as subscribed: the query runs, as it did before this cache) and reads
the set again; a change heard while reading is read again. The same holds from the start until the
first read, and whenever the listening connection is lost, until it is back. So a webhook receives
every event handled after its creation has been heard: the NOTIFY's latency after its commit, the
same as for an event handled just before it. A deleted webhook's event type may stay known a moment
longer: the query then finds no webhook and records nothing.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notification.models import Webhook
from servicekit.db import listen

log = logging.getLogger(__name__)

WEBHOOKS_CHANNEL = "notification_webhooks"


async def announce(session: AsyncSession) -> None:
    """In the transaction that creates or deletes a webhook: heard by every process at its commit."""
    await session.execute(select(func.pg_notify(WEBHOOKS_CHANNEL, "")))


class SubscribedEvents:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        # None: not known now, every event type counts as subscribed.
        self._types: frozenset[str] | None = None
        self._changes = 0
        self._listening = False
        self._reading: asyncio.Task[None] | None = None
        self.reads = 0

    def wants(self, event_type: str) -> bool:
        """False only when it is known that no live webhook subscribes to `event_type`."""
        return self._types is None or event_type in self._types

    def forget(self, _payload: str = "") -> None:
        """Something changed (or may have, unheard): unknown until read again."""
        self._changes += 1
        self._types = None
        if self._reading is None or self._reading.done():
            self._reading = asyncio.get_running_loop().create_task(self._read(), name="subscribed-events")

    async def _read(self) -> None:
        while self._types is None:
            changes = self._changes
            try:
                async with self.sessions() as session:
                    rows = await session.scalars(
                        select(func.unnest(Webhook.events)).where(Webhook.deleted_at.is_(None)).distinct()
                    )
                    types = frozenset(rows.all())
            except Exception:
                log.exception("the subscribed webhook event types could not be read; trying again")
                await asyncio.sleep(1.0)
                continue
            self.reads += 1
            if not self._listening:
                return  # read again when the listener is back (`connected`)
            if changes == self._changes:  # nothing heard meanwhile: what was read is current
                self._types = types

    def connected(self) -> None:
        self._listening = True
        self.forget()  # what changed while nobody listened

    def lost(self) -> None:
        self._listening = False
        self._types = None

    async def run(self, database_url: str) -> None:
        await listen(
            database_url,
            WEBHOOKS_CHANNEL,
            self.forget,
            on_connect=self.connected,
            on_lost=self.lost,
            name="webhook subscription listener (every event type counts as subscribed meanwhile)",
        )
