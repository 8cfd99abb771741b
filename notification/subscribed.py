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

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notification.models import Webhook
from servicekit import remembered
from servicekit.remembered import Remembered

WEBHOOKS_CHANNEL = "notification_webhooks"


async def announce(session: AsyncSession) -> None:
    """In the transaction that creates or deletes a webhook: heard by every process at its commit."""
    await remembered.announce(session, WEBHOOKS_CHANNEL)


class SubscribedEvents:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        # Read again at once when forgotten: `wants` is asked in a consumer's batch, which does not
        # wait for a read.
        self.types = Remembered(
            self._read, channel=WEBHOOKS_CHANNEL, name="subscribed webhook event types", eager=True
        )

    @property
    def reads(self) -> int:
        return self.types.reads

    def wants(self, event_type: str) -> bool:
        """False only when it is known that no live webhook subscribes to `event_type`."""
        types = self.types.known()
        return types is None or event_type in types

    def forget(self) -> None:
        """A webhook was created or deleted here (after its commit)."""
        self.types.forget()

    async def run(self, database_url: str) -> None:
        await self.types.run(database_url)

    async def _read(self) -> frozenset[str]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(func.unnest(Webhook.events)).where(Webhook.deleted_at.is_(None)).distinct()
            )
            return frozenset(rows.all())
