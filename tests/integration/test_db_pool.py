"""A pooled connection the server closed is replaced before it is handed out, without a round trip
on every checkout (`servicekit.db.create_engine`)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text

from servicekit.db import create_engine, database_url, ensure_database, session_factory, transaction
from tests.helpers import eventually


@pytest.fixture
async def engine(infra):
    url = database_url(infra.postgres_url, "servicekit_pool_it")
    await ensure_database(url)
    engine = create_engine(url, pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _backend_pid(sessions) -> int:
    async with transaction(sessions) as session:
        return int(await session.scalar(text("SELECT pg_backend_pid()")))


async def _driver_connection(sessions):
    """The asyncpg connection the pool hands out next (its only one)."""
    async with sessions() as session:
        raw = await (await session.connection()).get_raw_connection()
        return raw.driver_connection


async def test_a_connection_whose_backend_ended_is_replaced_on_checkout(engine, infra) -> None:
    sessions = session_factory(engine)
    pooled = await _backend_pid(sessions)
    driver = await _driver_connection(sessions)
    admin = await asyncpg.connect(infra.postgres_url)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pooled)
    finally:
        await admin.close()

    async def closed() -> bool:
        return driver.is_closed()

    await eventually(closed, timeout=10, what="the driver to see its connection close")

    assert await _backend_pid(sessions) != pooled


async def test_a_live_pooled_connection_is_reused(engine) -> None:
    sessions = session_factory(engine)
    assert await _backend_pid(sessions) == await _backend_pid(sessions)
