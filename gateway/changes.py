"""What this gateway instance knows of the catalog's changes: the change feed
(`servicekit.changefeed`), read as it is written, turned into versions the response cache checks.

Versions are ticks of a local clock, one per change read: the tick of the last change of the
content, of availability (a product sold out or came back), and of the stock of each product
(hashed into a fixed number of slots, so memory stays bounded; two products sharing a slot only
invalidate each other's answers). An answer records the tick at which its execution started: it
is current while nothing it depends on changed after that tick. Whatever changed before the tick
was read before the execution asked the catalog, which had moved its own cache to the new data
before it published the change.

The feed is read with a blocking read that returns as soon as a change is written, and at the
latest after `BLOCK_MS` when nothing is. An instance that cannot vouch for its knowledge (the
read failed, or has not come back for longer than it may block plus `GRACE`, as a connection
that died silently would) serves nothing from the cache; when reading resumes, or an entry was
missed (numbers jumped), everything counts as changed.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from redis.exceptions import RedisError

from servicekit.changefeed import CONTENT, STREAM, Change

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)

# Entries of the stream as the client returns them: (id, fields), bytes throughout.
Entries = list[tuple[bytes, dict[bytes, bytes]]]
SLOTS = 1 << 16
BLOCK_MS = 500
# A read blocks at most BLOCK_MS; one that takes longer than that and this may be on a dead connection.
GRACE = 0.25
BATCH = 1000
# How long `stop` waits, beyond a read's longest block, before it cancels the reader.
STOP_MARGIN = 1.0


def slot_of(product_id: str) -> int:
    return zlib.crc32(product_id.encode()) & (SLOTS - 1)


class CatalogChanges:
    def __init__(self, redis: aioredis.Redis | None, *, stream: str = STREAM) -> None:
        """`redis` is a client of the cache Redis of its own (its reads block); None: never current."""
        self.redis = redis
        self.stream = stream
        self.tick = 1
        self.content = 1
        self.availability = 1
        self._stock = array.array("Q", bytes(8 * SLOTS))
        self._last_id = "$"
        self._last_seq: int | None = None
        self._reading_since = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.changes_read = 0

    # -- what the cache asks ------------------------------------------------------------------------

    @property
    def current(self) -> bool:
        """Whether what this instance knows is current to within a fraction of a second."""
        return time.monotonic() - self._reading_since <= BLOCK_MS / 1000 + GRACE

    def unchanged_since(self, tick: int, slots: Iterable[int], *, listing: bool) -> bool:
        """Whether nothing an answer built at `tick` depends on has changed since."""
        if tick < self.content or (listing and tick < self.availability):
            return False
        stock = self._stock
        return all(stock[slot] <= tick for slot in slots)

    # -- what changes them --------------------------------------------------------------------------

    def apply(self, change: Change) -> None:
        self.tick += 1
        if change.kind == CONTENT:
            self.content = self.tick
            return
        for product_id in change.product_ids:
            self._stock[slot_of(product_id)] = self.tick
        if change.availability:
            self.availability = self.tick

    def everything_changed(self) -> None:
        """After a gap in what was read, or a change made here (an administrator's mutation)."""
        self.tick += 1
        self.content = self.tick

    def read(self, entries: Entries) -> None:
        """Apply the entries of one read of the stream, in order."""
        for entry_id, fields in entries:
            self._last_id = entry_id.decode()
            change = Change.parse(fields)
            if change is None or (self._last_seq is not None and change.seq != self._last_seq + 1):
                self.everything_changed()
            if change is None:
                continue
            self._last_seq = change.seq
            self.apply(change)
            self.changes_read += 1

    # -- the reader ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None and self.redis is not None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="catalog-changes")

    async def stop(self) -> None:
        """Let the reader finish its blocking read and return; cancel it only if it does not.

        Cancelling a blocking XREAD in the middle can leave redis-py waiting on a reply it will
        never read, so the reader is asked to stop and given the longest a read may block."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        _, pending = await asyncio.wait({task}, timeout=BLOCK_MS / 1000 + GRACE + STOP_MARGIN)
        if pending:
            task.cancel()
            _, pending = await asyncio.wait({task}, timeout=STOP_MARGIN)
            if pending:
                log.warning("the catalog change feed reader did not stop; leaving it behind")
        elif not task.cancelled() and (error := task.exception()) is not None:
            log.warning("the catalog change feed reader ended with %r", error)

    async def _run(self) -> None:
        assert self.redis is not None
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                await self._start_position()
                self.everything_changed()  # whatever happened while nobody listened
                backoff = 0.2
                while not self._stopping.is_set():
                    self._reading_since = time.monotonic()
                    replies = cast(
                        "list[tuple[bytes, Entries]] | None",
                        await self.redis.xread({self.stream: self._last_id}, count=BATCH, block=BLOCK_MS),
                    )
                    for _, entries in replies or ():
                        self.read(entries)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._reading_since = float("-inf")
                log.warning("catalog change feed unavailable, answering without the cache: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                backoff = min(backoff * 2, 5.0)

    async def _start_position(self) -> None:
        """Read on from the last entry read, or from the newest entry when starting."""
        assert self.redis is not None
        if self._last_id != "$":
            return
        newest = cast("Entries", await self.redis.xrevrange(self.stream, count=1))
        if newest:
            entry_id, fields = newest[0]
            change = Change.parse(fields)
            self._last_id = entry_id.decode()
            self._last_seq = change.seq if change is not None else None
        else:
            self._last_id = "0-0"
