"""Cache-aside in Redis for product reads and list/search pages, invalidated by version counters.

Every key carries the versions of what its entry was read from. Content (products' names, prices,
variants, images; categories) has one version for the whole catalog: an administrator's write
INCRs it after its commit, so every entry written before it is unreachable at once (no scan, no
per-key delete) and ages out by its TTL. Stock changes with every order, so it is versioned per
product instead: a reservation or release moves the stock version of the products it touched
(fields of one hash) and the listing version, which list and search pages carry because a page
shows the stock of many products. A product's entry is keyed by the content version and its own
stock version (`catalog:v7.12:product:<id>`), so the checkouts of some products leave every other
product's entry where it is. A reader that raced a write at worst stores an old value under an old
version, which nobody reads any more.

Each invalidation also tells the gateway what changed, on the catalog's change feed
(`servicekit.changefeed`), in the same round trip and after the versions moved: a gateway that
reads the change and asks again gets the new data.

Redis is a help, never a dependency: when it is away every call here answers "miss" and the
reads go to PostgreSQL, with a warning in the log (at most one every few seconds).

Each process also keeps the entries it decoded last in memory, by their versioned key, for no
longer than they live in Redis: the key names one version, so what it holds is what Redis holds
under it, and a read of the current version still goes to Redis first. A hit there saves the
second round trip and the decoding. So that a key never names two contents, every version starts
from a random number whenever Redis does not have it (a new, restarted or flushed Redis, an
evicted key): counting from 0 again would bring back keys this process still holds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit import changefeed
from servicekit.changefeed import CONTENT_CHANGED, STOCK, Change
from servicekit.db import after_commit
from servicekit.metrics import CACHE_ERRORS, CACHE_HITS, CACHE_MISSES

log = logging.getLogger(__name__)
T = TypeVar("T")

WARNING_INTERVAL = 10.0
# Entries kept decoded in memory, weighed in products (a page of 20 weighs 20): a few MB.
LOCAL_CAPACITY = 8192
# KEYS[1] a version key, ARGV[1] a random start: the version, started when missing, one step
# further: what an invalidation does.
SEEDED_INCREMENT = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('INCR', KEYS[1])
"""
# KEYS the version keys, ARGV[1] a random start: each version, started when missing.
SEEDED_VERSIONS = """
local versions = {}
for i, key in ipairs(KEYS) do
  local version = redis.call('GET', key)
  if not version then
    redis.call('SET', key, ARGV[1])
    version = ARGV[1]
  end
  versions[i] = version
end
return versions
"""
# KEYS[1] the content version key, KEYS[2] the hash of stock versions; ARGV[1] a random start,
# ARGV[2..] product ids: the content version, then each product's stock version, started when
# missing.
PRODUCT_VERSIONS = """
local content = redis.call('GET', KEYS[1])
if not content then
  redis.call('SET', KEYS[1], ARGV[1])
  content = ARGV[1]
end
local versions = {content}
for i = 2, #ARGV do
  local stock = redis.call('HGET', KEYS[2], ARGV[i])
  if not stock then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[1])
    stock = ARGV[1]
  end
  versions[i] = stock
end
return versions
"""
# KEYS[1] the hash of stock versions, KEYS[2] the listing version key; ARGV[1] a random start,
# ARGV[2..] product ids: each product's stock version and the listing version one step further.
STOCK_INCREMENT = """
for i = 2, #ARGV do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[1]) == 0 then
    redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
  end
end
redis.call('SET', KEYS[2], ARGV[1], 'NX')
return redis.call('INCR', KEYS[2])
"""


class _Recent:
    """Decoded entries by key, least recently used first, each until its Redis TTL would end."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.weight = 0
        self._entries: OrderedDict[str, tuple[float, int, Any]] = OrderedDict()

    def get(self, key: str) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[2]

    def put(self, key: str, value: Any, *, weight: int, expires_at: float) -> None:
        self._drop(key)
        if weight > self.capacity:
            return
        self._entries[key] = (expires_at, weight, value)
        self.weight += weight
        while self.weight > self.capacity:
            _, (_, dropped, _) = self._entries.popitem(last=False)
            self.weight -= dropped

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.weight -= entry[1]


_PENDING_STOCK = "catalog.cache.pending_stock"


@dataclass
class _PendingStock:
    """The products whose stock one transaction changed, published once it commits."""

    product_ids: set[str] = field(default_factory=set)
    availability: bool = False


class CatalogCache:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        ttl: int,
        namespace: str = "catalog",
        local_capacity: int = LOCAL_CAPACITY,
    ) -> None:
        self.redis = redis
        self.ttl = ttl
        self.namespace = namespace
        self._recent = _Recent(local_capacity)
        self.hits = 0
        self.misses = 0
        self.failures = 0
        self._last_warning = float("-inf")
        self._pending: set[asyncio.Task[None]] = set()
        self._seeded_increment = redis.register_script(SEEDED_INCREMENT)
        self._seeded_versions = redis.register_script(SEEDED_VERSIONS)
        self._product_versions = redis.register_script(PRODUCT_VERSIONS)
        self._stock_increment = redis.register_script(STOCK_INCREMENT)
        self._append_change = redis.register_script(changefeed.APPEND)

    @property
    def version_key(self) -> str:
        """The content version's key."""
        return f"{self.namespace}:version"

    @property
    def stock_versions_key(self) -> str:
        """The hash of each product's stock version."""
        return f"{self.namespace}:stock-versions"

    @property
    def listing_version_key(self) -> str:
        return f"{self.namespace}:listing-version"

    def key(self, version: int | str, kind: str, name: str) -> str:
        return f"{self.namespace}:v{version}:{kind}:{name}"

    async def version(self) -> int | None:
        """The current content version; None when Redis cannot be reached."""
        try:
            (raw,) = await self._seeded_versions(keys=[self.version_key], args=[_random_start()])
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return None
        return int(raw)

    async def product_versions(self, product_ids: Sequence[str]) -> list[str] | None:
        """Each product's version (content and its own stock), in one round trip; None when Redis
        cannot be reached."""
        try:
            raw = await self._product_versions(
                keys=[self.version_key, self.stock_versions_key], args=[_random_start(), *product_ids]
            )
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return None
        content, *stock = (int(v) for v in raw)
        return [f"{content}.{s}" for s in stock]

    async def listing_version(self) -> str | None:
        """The version of list and search pages (content and every product's stock); None when
        Redis cannot be reached."""
        try:
            content, listing = await self._seeded_versions(
                keys=[self.version_key, self.listing_version_key], args=[_random_start()]
            )
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return None
        return f"{int(content)}.{int(listing)}"

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            # The client is created without decode_responses: values are bytes.
            values = cast("list[bytes | None]", await self.redis.mget(keys))
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

    async def get_decoded(
        self, keys: Sequence[str], decode: Callable[[bytes], T | None], *, weigh: Callable[[T], int]
    ) -> list[T | None]:
        """The entries of `keys` decoded (None: a miss, or an entry `decode` cannot read).

        Entries this process decoded before come from memory; the others from Redis, with what is
        left of their TTL, which is as long as memory keeps them.
        """
        found: list[T | None] = [self._recent.get(key) for key in keys]
        wanted = [i for i, value in enumerate(found) if value is None]
        local_hits = len(keys) - len(wanted)
        if local_hits:
            self.hits += local_hits
            CACHE_HITS.labels(cache=self.namespace).inc(local_hits)
        if not wanted:
            return found
        names = [keys[i] for i in wanted]
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.mget(names)
                for name in names:
                    pipe.pttl(name)
                raw, *lives = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            raw, lives = [None] * len(names), [0] * len(names)
        now = time.monotonic()
        hits = 0
        for i, value, life in zip(wanted, raw, lives, strict=True):
            if value is None:
                continue
            hits += 1
            decoded = decode(value)
            found[i] = decoded
            if decoded is not None and life > 0:
                self._recent.put(keys[i], decoded, weight=weigh(decoded), expires_at=now + life / 1000)
        self.hits += hits
        self.misses += len(names) - hits
        CACHE_HITS.labels(cache=self.namespace).inc(hits)
        CACHE_MISSES.labels(cache=self.namespace).inc(len(names) - hits)
        return found

    async def set_decoded(self, items: dict[str, tuple[bytes, Any]], *, weigh: Callable[[Any], int]) -> None:
        """Store entries in Redis (`key: (encoded, decoded)`), and keep them decoded in memory."""
        await self.set_many({key: encoded for key, (encoded, _) in items.items()})
        expires_at = time.monotonic() + self.ttl
        for key, (_, decoded) in items.items():
            self._recent.put(key, decoded, weight=weigh(decoded), expires_at=expires_at)

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

    async def invalidate(self, change: Change = CONTENT_CHANGED) -> None:
        """Make what `change` touched unreachable and publish it: call after a write has committed.
        A stock change moves the stock version of its products and the listing version; any other
        change moves the content version, which every entry carries."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                if change.kind == STOCK:
                    await self._stock_increment(
                        keys=[self.stock_versions_key, self.listing_version_key],
                        args=[_random_start(), *change.product_ids],
                        client=pipe,
                    )
                else:
                    await self._seeded_increment(keys=[self.version_key], args=[_random_start()], client=pipe)
                await self._append_change(
                    keys=[changefeed.STREAM, changefeed.SEQUENCE], args=change.arguments(), client=pipe
                )
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # Entries of the old version stay readable until their TTL: say so loudly.
            self._unavailable(exc, during="invalidation; cached entries may be stale until their TTL")

    def invalidate_after_commit(
        self, session: AsyncSession, stock_of: Sequence[str] = (), *, availability: bool = False
    ) -> None:
        """For writes inside a transaction someone else commits (the event consumer's): once,
        after that whole transaction commits, naming every product whose stock it changed."""
        pending: _PendingStock = session.info.setdefault(_PENDING_STOCK, _PendingStock())
        pending.product_ids.update(stock_of)
        pending.availability = pending.availability or availability

        def committed() -> None:
            session.info.pop(_PENDING_STOCK, None)
            change = (
                changefeed.stock_changed(pending.product_ids, availability=pending.availability)
                if pending.product_ids
                else CONTENT_CHANGED
            )
            task = asyncio.get_running_loop().create_task(self.invalidate(change))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        after_commit(session, committed, once_per=self)

    def _unavailable(self, exc: BaseException, during: str = "read") -> None:
        self.failures += 1
        CACHE_ERRORS.labels(cache=self.namespace).inc()
        now = time.monotonic()
        if now - self._last_warning >= WARNING_INTERVAL:
            self._last_warning = now
            log.warning("cache unavailable (%s), serving from PostgreSQL: %s", during, exc)


def _random_start() -> int:
    # Far below 2**63, where INCR would overflow.
    return secrets.randbelow(2**52)
