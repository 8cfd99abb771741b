"""The gateway's reader of the catalog's change feed against the session's real Redis: it learns of
a change as it is written, notices changes it missed, and vouches for nothing while Redis is away."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.changes import CatalogChanges, slot_of
from servicekit import changefeed
from servicekit.changefeed import CONTENT_CHANGED, Change, stock_changed
from servicekit.embedded import EmbeddedRedis
from tests.helpers import eventually

LAMP = "5d0f6a39-5c1e-4a8c-9a55-0b9f3c1d2e4f"


@pytest.fixture
async def redis(infra) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(infra.redis_url, socket_timeout=5)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def reader(redis) -> AsyncIterator[CatalogChanges]:
    changes = CatalogChanges(redis, stream=f"test:changes:{uuid.uuid4().hex}")
    changes.start()
    try:
        await eventually(lambda: _true(changes.current), timeout=10, what="the reader to listen")
        yield changes
    finally:
        await changes.stop()


async def _true(value: bool) -> bool:
    return value


async def publish(redis: aioredis.Redis, stream: str, change: Change) -> int:
    script = redis.register_script(changefeed.APPEND)
    return int(await script(keys=[stream, stream + ":seq"], args=change.arguments()))


async def test_a_change_is_read_as_it_is_written(redis, reader):
    tick, lamp = reader.tick, [slot_of(LAMP)]

    await publish(redis, reader.stream, stock_changed([LAMP], availability=False))
    await eventually(lambda: _true(reader.changes_read == 1), timeout=5, what="the stock change")
    after_stock = (
        reader.unchanged_since(tick, lamp, listing=False),
        reader.unchanged_since(tick, [], listing=True),
    )
    stock_tick = reader.tick
    await publish(redis, reader.stream, CONTENT_CHANGED)
    await eventually(lambda: _true(reader.changes_read == 2), timeout=5, what="the content change")

    assert after_stock == (False, True)  # the lamp's answers are stale, the others not
    assert not reader.unchanged_since(stock_tick, [], listing=False)  # the content changed after it
    assert reader.unchanged_since(reader.tick, lamp, listing=True)
    assert reader.current


async def test_a_change_the_reader_missed_counts_as_everything_changed(redis, reader):
    await publish(redis, reader.stream, stock_changed([LAMP], availability=False))
    await eventually(lambda: _true(reader.changes_read == 1), timeout=5, what="the first change")
    content = reader.content

    await redis.incr(reader.stream + ":seq")  # a number taken by an entry the stream no longer has
    await publish(redis, reader.stream, stock_changed([LAMP], availability=False))
    await eventually(lambda: _true(reader.changes_read == 2), timeout=5, what="the next change")

    assert reader.content > content


async def test_a_reader_vouches_for_nothing_while_redis_is_away_and_assumes_the_worst_after(data_dir: Path):
    server = await asyncio.to_thread(EmbeddedRedis(data_dir / "gateway-changes-outage").start)
    client = aioredis.from_url(server.url, socket_timeout=2, socket_connect_timeout=0.5)
    changes = CatalogChanges(client)
    changes.start()
    try:
        await eventually(lambda: _true(changes.current), timeout=10, what="the reader to listen")
        content = changes.content

        await asyncio.to_thread(server.stop)
        await eventually(lambda: _true(not changes.current), timeout=5, what="the reader to give up")
        await asyncio.to_thread(server.start)
        await eventually(lambda: _true(changes.current), timeout=15, what="the reader to listen again")

        assert changes.content > content  # what was written meanwhile is unknown: everything changed
    finally:
        await changes.stop()
        await client.aclose()
        await asyncio.to_thread(server.stop)
