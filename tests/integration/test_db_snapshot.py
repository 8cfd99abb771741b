"""Reads of several statements see one snapshot (`servicekit.db.snapshot`), as an order with its
history needs: a transaction committed between the statements is not half seen."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from servicekit.db import (
    after_commit,
    driver,
    reads,
    session_factory,
    snapshot,
    transaction,
)
from tests.integration.harness import scratch_database


@pytest.fixture
async def sessions(infra):
    async with scratch_database(
        infra,
        "servicekit_snapshot_it",
        "DROP TABLE IF EXISTS parcels, parcel_events",
        "CREATE TABLE parcels (id int PRIMARY KEY, status text NOT NULL)",
        "CREATE TABLE parcel_events (parcel int NOT NULL, status text NOT NULL)",
        "INSERT INTO parcels VALUES (1, 'PACKED')",
        "INSERT INTO parcel_events VALUES (1, 'PACKED')",
    ) as (_, engine):
        yield session_factory(engine)


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


async def _statuses(sessions) -> set[str]:
    async with reads(sessions) as session:
        return set(await session.scalars(text("SELECT status FROM parcel_events")))


async def test_the_driver_connection_writes_in_the_sessions_transaction_begun_or_not(sessions):
    """`driver` before any statement of the session begins its transaction: what it writes is
    seen by the session's statements, commits with it and is one transaction with them."""
    async with transaction(sessions) as session:
        pg = await driver(session)
        await pg.execute("INSERT INTO parcel_events VALUES (1, 'DRIVEN')")
        first = await pg.fetchval("SELECT pg_current_xact_id()::text")
        second = await session.scalar(text("SELECT pg_current_xact_id()::text"))
        seen = await session.scalar(text("SELECT count(*) FROM parcel_events WHERE status = 'DRIVEN'"))
        assert await _statuses(sessions) == {"PACKED"}  # not committed yet

    assert (first == second, seen) == (True, 1)
    assert await _statuses(sessions) == {"PACKED", "DRIVEN"}


async def test_what_the_driver_wrote_rolls_back_with_the_session(sessions):
    async def failing_use_case() -> None:
        async with transaction(sessions) as session:
            await session.execute(text("UPDATE parcels SET status = 'MOVED' WHERE id = 1"))
            await (await driver(session)).execute("INSERT INTO parcel_events VALUES (1, 'UNDONE')")
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        await failing_use_case()

    assert await _statuses(sessions) == {"PACKED"}


async def test_a_savepoint_holds_what_the_driver_wrote_inside_it(sessions):
    async with transaction(sessions) as session:
        pg = await driver(session)
        await pg.execute("INSERT INTO parcel_events VALUES (1, 'KEPT')")
        undone = await session.begin_nested()
        await (await driver(session)).execute("INSERT INTO parcel_events VALUES (1, 'UNDONE')")
        await undone.rollback()

    assert await _statuses(sessions) == {"PACKED", "KEPT"}


async def test_the_driver_keeps_a_snapshots_isolation_and_read_only(sessions):
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        async with snapshot(sessions) as session:
            await (await driver(session)).execute("UPDATE parcels SET status = 'LOST'")
