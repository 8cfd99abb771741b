"""A value read from the database and kept in the process for as long as nothing says it changed.

For what is read on every request and changed rarely, by an administrator (the shop's shipping
methods and tax rates, the event types some webhook subscribes to). Whoever changes it sends a
NOTIFY on the value's channel in the changing transaction (`announce`, or a trigger on its
tables), so every process hears of it once the change is committed; each process LISTENs (`run`) and forgets its copy when it hears.

A process keeps what it read only while it is listening, and only when nothing was heard while it
was reading (a change committed during the read may not be in what was read). From the start until
the listener is connected, and whenever its connection is lost until it is back, nothing is kept:
every `get` reads. So a change is seen by every process within the NOTIFY's latency after its
commit, and by the changing process itself at once (it calls `forget` after its commit).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.db import listen

log = logging.getLogger(__name__)

T = TypeVar("T")


async def announce(session: AsyncSession, channel: str) -> None:
    """In the transaction that changes a remembered value: heard by every process at its commit."""
    await session.execute(select(func.pg_notify(channel, "")))


class Remembered(Generic[T]):
    """The value `read` returns, remembered between changes announced on `channel`.

    With `eager`, a forgotten value is read again at once in the background (for a caller that
    cannot wait for a read: `known`); otherwise on the next `get`."""

    def __init__(
        self, read: Callable[[], Awaitable[T]], *, channel: str, name: str, eager: bool = False
    ) -> None:
        self._read = read
        self.channel = channel
        self.name = name
        self.eager = eager
        self._value: T | None = None
        self._known = False
        # Changes heard (or possibly missed) so far: a read keeps its result only if none came
        # while it ran.
        self._changes = 0
        self._listening = False
        self._reading: asyncio.Task[None] | None = None
        self.reads = 0

    def known(self) -> T | None:
        """The remembered value, or None while it is not known."""
        return self._value if self._known else None

    async def get(self) -> T:
        """The remembered value, or the value read now (and remembered if it may be)."""
        if self._known:
            return self._value  # type: ignore[return-value]
        return await self._read_and_keep()

    def forget(self, _payload: str = "") -> None:
        """It changed, or may have, unheard: not known until read again."""
        self._changes += 1
        self._known = False
        self._value = None
        if self.eager and self._listening and (self._reading is None or self._reading.done()):
            self._reading = asyncio.get_running_loop().create_task(self._read_until_known(), name=self.name)

    def connected(self) -> None:
        self._listening = True
        self.forget()  # what changed while nobody listened

    def lost(self) -> None:
        self._listening = False
        self.forget()

    async def run(self, database_url: str) -> None:
        """Listen for the announced changes for as long as the task runs."""
        await listen(
            database_url,
            self.channel,
            self.forget,
            on_connect=self.connected,
            on_lost=self.lost,
            name=f"{self.name} listener (read for every use meanwhile)",
        )

    async def _read_and_keep(self) -> T:
        changes = self._changes
        value = await self._read()
        self.reads += 1
        if self._listening and changes == self._changes:
            self._value, self._known = value, True
        return value

    async def _read_until_known(self) -> None:
        while self._listening and not self._known:
            try:
                await self._read_and_keep()
            except Exception:
                log.exception("%s could not be read; trying again", self.name)
                await asyncio.sleep(1.0)
