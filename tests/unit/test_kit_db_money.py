"""servicekit.db.after_commit and the Money message conversions of servicekit.money."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from ecommerce.common.v1 import money_pb2
from servicekit.db import after_commit
from servicekit.money import from_proto, to_proto


@pytest_asyncio.fixture
async def session() -> AsyncIterator[AsyncSession]:
    # Transactions that run no statement never open a connection: no server is needed here.
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/nothing")
    async with AsyncSession(engine) as session:
        yield session
    await engine.dispose()


async def test_actions_run_in_order_once_the_transaction_commits(session):
    ran: list[str] = []
    async with session.begin():
        after_commit(session, lambda: ran.append("first"))
        after_commit(session, lambda: ran.append("second"))
        assert ran == []

    assert ran == ["first", "second"]


async def test_nothing_runs_for_a_rolled_back_transaction_nor_later(session):
    ran: list[str] = []

    async def failing_use_case() -> None:
        async with session.begin():
            after_commit(session, lambda: ran.append("rolled back"))
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        await failing_use_case()
    async with session.begin():
        after_commit(session, lambda: ran.append("committed"))

    assert ran == ["committed"]


async def test_an_action_keyed_once_per_transaction_runs_once(session):
    ran: list[str] = []
    async with session.begin():
        for n in range(3):
            after_commit(session, lambda n=n: ran.append(f"invalidate {n}"), once_per="cache")
        after_commit(session, lambda: ran.append("other"))
    async with session.begin():
        after_commit(session, lambda: ran.append("next transaction"), once_per="cache")

    assert ran == ["invalidate 0", "other", "next transaction"]


def test_minor_units_and_a_money_message_convert_both_ways():
    message = to_proto(1250, "EUR")

    assert message == money_pb2.Money(amount_minor=1250, currency="EUR")
    assert from_proto(message) == (1250, "EUR")
    assert from_proto(to_proto(-(2**63), "JPY")) == (-(2**63), "JPY")
    assert from_proto(money_pb2.Money()) == (0, "")
