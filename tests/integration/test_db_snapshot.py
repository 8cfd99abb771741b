"""Reads of several statements see one snapshot (`servicekit.db.snapshot`), as an order with its
history needs: a transaction committed between the statements is not half seen."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from servicekit.db import (
    after_commit,
    create_engine,
    database_url,
    ensure_database,
    reads,
    session_factory,
    snapshot,
    transaction,
)


@pytest.fixture
async def sessions(infra):
    url = database_url(infra.postgres_url, "servicekit_snapshot_it")
    await ensure_database(url)
    engine = create_engine(url, pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS parcels, parcel_events"))
        await conn.execute(text("CREATE TABLE parcels (id int PRIMARY KEY, status text NOT NULL)"))
        await conn.execute(text("CREATE TABLE parcel_events (parcel int NOT NULL, status text NOT NULL)"))
        await conn.execute(text("INSERT INTO parcels VALUES (1, 'PACKED')"))
        await conn.execute(text("INSERT INTO parcel_events VALUES (1, 'PACKED')"))
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def _ship(sessions) -> None:
    async with transaction(sessions) as session:
        await session.execute(text("UPDATE parcels SET status = 'SHIPPED' WHERE id = 1"))
        await session.execute(text("INSERT INTO parcel_events VALUES (1, 'SHIPPED')"))


async def test_a_snapshot_does_not_see_what_commits_between_its_statements(sessions):
    async with snapshot(sessions) as session:
        status = await session.scalar(text("SELECT status FROM parcels WHERE id = 1"))
        await _ship(sessions)  # committed between the two reads
        events = list(await session.scalars(text("SELECT status FROM parcel_events ORDER BY status")))

    assert (status, events) == ("PACKED", ["PACKED"])


async def test_without_one_the_second_statement_sees_the_newer_rows(sessions):
    """What the snapshot prevents: under READ COMMITTED, a status from before and a history from
    after the same transaction."""
    async with sessions() as session:
        status = await session.scalar(text("SELECT status FROM parcels WHERE id = 1"))
        await _ship(sessions)
        events = list(await session.scalars(text("SELECT status FROM parcel_events ORDER BY status")))

    assert (status, events) == ("PACKED", ["PACKED", "SHIPPED"])


async def test_reads_see_each_commit_as_a_transaction_would_but_run_in_none(sessions):
    """`reads`: what READ COMMITTED shows, each statement on its own (no BEGIN, no ROLLBACK)."""
    async with reads(sessions) as session:
        status = await session.scalar(text("SELECT status FROM parcels WHERE id = 1"))
        await _ship(sessions)
        events = list(await session.scalars(text("SELECT status FROM parcel_events ORDER BY status")))
        first, second = [await session.scalar(text("SELECT pg_current_xact_id()::text")) for _ in range(2)]

    assert (status, events) == ("PACKED", ["PACKED", "SHIPPED"])
    assert first != second  # each statement was a transaction of its own


async def test_a_transaction_after_reads_on_the_same_connection_is_one_again(sessions):
    async with reads(sessions) as session:
        await session.scalar(text("SELECT 1"))
    async with transaction(sessions) as session:
        first, second = [await session.scalar(text("SELECT pg_current_xact_id()::text")) for _ in range(2)]

    assert first == second


async def test_a_snapshot_refuses_to_write(sessions):
    with pytest.raises(DBAPIError, match="read-only transaction"):
        async with snapshot(sessions) as session:
            await session.execute(text("UPDATE parcels SET status = 'LOST'"))


async def test_after_commit_waits_for_the_outermost_commit_whatever_savepoints_do_inside(sessions):
    """A batch of messages in one transaction: one message's savepoint commits, another's rolls
    back; the actions added before either run once, after the whole transaction committed."""
    ran: list[tuple[str, str]] = []

    def seen_from_outside(name: str):
        def action() -> None:
            ran.append((name, "committed"))

        return action

    async with transaction(sessions) as session:
        await session.execute(text("UPDATE parcels SET status = 'BATCHED' WHERE id = 1"))
        after_commit(session, seen_from_outside("first"), once_per="cache")
        kept = await session.begin_nested()
        await session.execute(text("INSERT INTO parcel_events VALUES (1, 'KEPT')"))
        await kept.commit()
        undone = await session.begin_nested()
        await session.execute(text("INSERT INTO parcel_events VALUES (1, 'UNDONE')"))
        await undone.rollback()
        after_commit(session, seen_from_outside("second"))
        assert ran == []

    assert ran == [("first", "committed"), ("second", "committed")]
    async with transaction(sessions) as session:
        statuses = set(await session.scalars(text("SELECT status FROM parcel_events")))
    assert "KEPT" in statuses
    assert "UNDONE" not in statuses


async def test_after_commit_drops_its_actions_when_the_outermost_transaction_rolls_back(sessions):
    ran: list[str] = []

    async def failing_batch() -> None:
        async with transaction(sessions) as session:
            after_commit(session, lambda: ran.append("rolled back"))
            inner = await session.begin_nested()
            await inner.commit()
            raise RuntimeError("the batch failed")

    with pytest.raises(RuntimeError):
        await failing_batch()
    async with transaction(sessions) as session:
        after_commit(session, lambda: ran.append("next"))

    assert ran == ["next"]
