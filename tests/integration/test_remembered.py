"""A value remembered between announced changes (`servicekit.remembered`): read once while the
process listens, read again after a change announced by any connection, never kept from a read
that a change overtook, and read for every use while the listener is away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from servicekit.db import session_factory, transaction
from servicekit.remembered import Remembered, announce
from tests.helpers import eventually
from tests.integration.harness import scratch_database

CHANNEL = "remembered_it"


@pytest.fixture
async def setup(infra):
    async with scratch_database(
        infra,
        "servicekit_remembered_it",
        "DROP TABLE IF EXISTS settings",
        "CREATE TABLE settings (name text PRIMARY KEY, value text NOT NULL)",
        "INSERT INTO settings VALUES ('colour', 'blue')",
    ) as (url, engine):
        yield url, session_factory(engine)


class Colour:
    """The remembered value of the test: the `colour` setting, with a way to hold a read midway."""

    def __init__(self, sessions) -> None:
        self.sessions = sessions
        self.hold: asyncio.Event | None = None
        self.holding = asyncio.Event()
        self.value = Remembered(self.read, channel=CHANNEL, name="colour")

    async def read(self) -> str:
        async with self.sessions() as session:
            colour = await session.scalar(text("SELECT value FROM settings WHERE name = 'colour'"))
        if self.hold is not None:
            self.holding.set()
            await self.hold.wait()
        return colour


@contextlib.asynccontextmanager
async def listening(colour: Colour, url: str) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(colour.value.run(url))
    try:
        await eventually(lambda: _true(colour.value._listening), what="the listener connected")
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _true(value: bool) -> bool:
    return value


async def set_colour(sessions, value: str, *, announced: bool = True) -> None:
    """As another process would: the change and its announcement in one transaction."""
    async with transaction(sessions) as session:
        await session.execute(text("UPDATE settings SET value = :v WHERE name = 'colour'"), {"v": value})
        if announced:
            await announce(session, CHANNEL)


async def test_without_a_listener_every_use_reads(setup):
    _, sessions = setup
    colour = Colour(sessions)

    assert [await colour.value.get() for _ in range(3)] == ["blue"] * 3
    assert colour.value.reads == 3
    assert colour.value.known() is None


async def test_while_listening_it_is_read_once_and_again_after_an_announced_change(setup):
    url, sessions = setup
    colour = Colour(sessions)
    async with listening(colour, url):
        assert [await colour.value.get() for _ in range(3)] == ["blue"] * 3
        assert colour.value.reads == 1

        await set_colour(sessions, "green")

        async def green() -> bool:
            return await colour.value.get() == "green"

        await eventually(green, what="the announced change read")
        assert colour.value.reads == 2
        assert colour.value.known() == "green"


async def test_an_unannounced_change_is_not_seen_while_remembered(setup):
    """What the announcement is for: without it, the process keeps what it read."""
    url, sessions = setup
    colour = Colour(sessions)
    async with listening(colour, url):
        assert await colour.value.get() == "blue"
        await set_colour(sessions, "green", announced=False)
        assert await colour.value.get() == "blue"


async def test_a_read_overtaken_by_a_change_is_answered_but_not_kept(setup):
    url, sessions = setup
    colour = Colour(sessions)
    async with listening(colour, url):
        colour.hold = asyncio.Event()
        reading = asyncio.create_task(colour.value.get())
        await asyncio.wait_for(colour.holding.wait(), 10)  # read "blue", not yet returned
        await set_colour(sessions, "green")

        async def heard() -> bool:
            return colour.value._changes > 1  # connected once, then the change

        await eventually(heard, what="the change heard during the read")
        colour.hold.set()
        assert await reading == "blue"
        assert colour.value.known() is None
        colour.hold = None
        assert await colour.value.get() == "green"


async def test_a_lost_listener_means_a_read_for_every_use_until_it_is_back(setup):
    url, sessions = setup
    colour = Colour(sessions)
    async with listening(colour, url):
        assert await colour.value.get() == "blue"
        admin = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN %' AND datname = current_database()"
            )
        finally:
            await admin.close()

        async def lost() -> bool:
            return colour.value.known() is None

        await eventually(lost, what="the lost listener noticed")
        # A change made meanwhile is seen (no announcement could be heard).
        await set_colour(sessions, "red", announced=False)
        assert await colour.value.get() == "red"

        async def back() -> bool:
            return (
                colour.value._listening
                and await colour.value.get() == "red"
                and colour.value.known() == "red"
            )

        await eventually(back, what="the listener back and the value remembered again")
