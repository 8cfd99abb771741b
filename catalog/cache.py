"""Cache-aside in Redis for product reads and list/search pages, invalidated by a version key.

Every key carries the namespace version (`catalog:v7:product:<id>`). A write by the catalog
INCRs the version after its commit, so every entry written before it is unreachable at once
(no scan, no per-key delete) and ages out by its TTL. A reader that raced a write at worst
stores an old value under the old version, which nobody reads any more.

Redis is a help, never a dependency: when it is away every call here answers "miss" and the
reads go to PostgreSQL, with a warning in the log (at most one every few seconds).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.metrics import CACHE_ERRORS, CACHE_HITS, CACHE_MISSES

log = logging.getLogger(__name__)

WARNING_INTERVAL = 10.0


class CatalogCache:
    def __init__(self, redis: aioredis.Redis, *, ttl: int, namespace: str = "catalog") -> None:
        self.redis = redis
        self.ttl = ttl
        self.namespace = namespace
        self.hits = 0
        self.misses = 0
        self.failures = 0
        self._last_warning = float("-inf")
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def version_key(self) -> str:
        return f"{self.namespace}:version"

    def key(self, version: int, kind: str, name: str) -> str:
        return f"{self.namespace}:v{version}:{kind}:{name}"

    async def version(self) -> int | None:
        """The current namespace version; None when Redis cannot be reached."""
        try:
            raw = await self.redis.get(self.version_key)
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return None
        return int(raw or 0)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            values = await self.redis.mget(keys)
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            values = [None] * len(keys)
        found = sum(1 for v in values if v is not None)
        self.hits += found
        self.misses += len(keys) - found
        CACHE_HITS.labels(cache=self.namespace).inc(found)
        CACHE_MISSES.labels(cache=self.namespace).inc(len(keys) - found)
        return list(values)

    async def get(self, key: str) -> bytes | None:
        return (await self.get_many([key]))[0]

    async def set_many(self, items: dict[str, bytes]) -> None:
        if not items:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, ex=self.ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._unavailable(exc)

    async def set(self, key: str, value: bytes) -> None:
        await self.set_many({key: value})

    async def invalidate(self) -> None:
        """Make every cached entry unreachable: call after a write has committed."""
        try:
            await self.redis.incr(self.version_key)
        except (RedisError, OSError) as exc:
            # Entries of the old version stay readable until their TTL: say so loudly.
            self._unavailable(exc, during="invalidation; cached entries may be stale until their TTL")

    def invalidate_after_commit(self, session: AsyncSession) -> None:
        """For writes inside a transaction someone else commits (the event consumer's)."""

        def committed(_session: object) -> None:
            task = asyncio.get_running_loop().create_task(self.invalidate())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        if not session.info.get("catalog_cache_hooked"):
            session.info["catalog_cache_hooked"] = True
            event.listen(session.sync_session, "after_commit", committed, once=True)

    def _unavailable(self, exc: BaseException, during: str = "read") -> None:
        self.failures += 1
        CACHE_ERRORS.labels(cache=self.namespace).inc()
        now = time.monotonic()
        if now - self._last_warning >= WARNING_INTERVAL:
            self._last_warning = now
            log.warning("cache unavailable (%s), serving from PostgreSQL: %s", during, exc)
