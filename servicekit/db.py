"""Async SQLAlchemy: engines, sessions, and creating a service's own database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
from sqlalchemy import MetaData, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def one_of(column: str, values: tuple[str, ...]) -> str:
    """The SQL condition of a CHECK constraint keeping `column` to the given strings."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def async_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and use the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    """An engine whose pool keeps `pool_size` connections open, with a quarter more (at least two)
    for a burst.

    A connection beyond the pool's size is closed as soon as it is handed back, so a process whose
    load keeps more transactions open than its pool holds opens a connection for nearly every
    one of them: under checkout load the order service, with 10 kept and 10 more allowed, opened
    six connections a second, each with its login, its type setup and every statement prepared
    again (a twentieth of its CPU). The overflow is for bursts; the pool's size is for the load."""
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max(2, pool_size // 4),
        pool_recycle=1800,
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(_dbapi_connection: object, record: ConnectionPoolEntry, _proxy: object) -> None:
    """Replace a pooled connection the server has closed (it restarted, or ended the backend) before
    it is handed out.

    asyncpg learns of a closed socket as soon as the event loop reads its end, so asking it costs no
    round trip; SQLAlchemy's `pool_pre_ping` asked the server instead (BEGIN, a query, ROLLBACK) on
    every checkout, three round trips per transaction of every service. A connection that dies while
    in use fails its statement, and SQLAlchemy then invalidates the pool's older connections."""
    driver = record.driver_connection
    if driver is None or driver.is_closed():
        raise exc.DisconnectionError("the database closed this pooled connection")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends, rolls back when it raises."""
    async with sessions() as session, session.begin():
        yield session


@asynccontextmanager
async def reads(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for reads that need no common snapshot: each statement sees what was committed
    when it began, as under READ COMMITTED in a transaction, but outside one (autocommit), which
    spares the BEGIN and the ROLLBACK round trips. It must not write; for reads that must agree
    with each other, `snapshot`."""
    async with sessions() as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session


@asynccontextmanager
async def snapshot(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A read-only session whose statements all see the database as of its first one.

    For reads of more than one statement: an aggregate loaded with its collections (one SELECT
    each) under READ COMMITTED could mix rows from before and after a transaction that committed
    between them, e.g. an order's new status with the history from before it."""
    async with sessions() as session, session.begin():
        await session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
        yield session


async def driver(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, in the session's transaction (begun now if no
    statement has begun it yet), for the hot statements of the platform's bookkeeping: an event's
    outbox and inbox rows, a saga's step. SQLAlchemy's compiling, binding and result building add
    about a third to what a statement costs the service (an INSERT in a transaction, measured in
    the process: 250 us of CPU through SQLAlchemy Core, 190 us here). Statements sent here are plain SQL with `$n` parameters; they commit or roll
    back with the session; a savepoint of the session holds them too. An error is asyncpg's own
    (not wrapped in SQLAlchemy's exceptions), and it leaves the transaction failed, as any would.
    """
    connection = await session.connection()
    pooled = await connection.get_raw_connection()
    adapted: Any = pooled.dbapi_connection
    # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with its first statement; a transaction
    # none has begun yet is begun here, as that statement would have (its isolation level and
    # read-only setting included), so that what is sent below is part of it.
    if adapted._transaction is None and adapted.isolation_level != "autocommit":
        async with adapted._execute_mutex:
            if adapted._transaction is None:
                await adapted._start_transaction()
    return cast(asyncpg.Connection, pooled.driver_connection)


_AFTER_COMMIT = "servicekit.after_commit"
_LISTENING = "servicekit.after_commit.listening"


def after_commit(
    session: AsyncSession, action: Callable[[], None], *, once_per: Hashable | None = None
) -> None:
    """Run `action` once the session's current transaction has committed, never if it rolls back.

    Actions run in the order they were added, synchronously inside SQLAlchemy's `after_commit`
    hook (an action that needs the event loop schedules a task). With `once_per`, only the
    first action added under that key in a transaction is kept: for "invalidate the cache once,
    however many rows changed". A savepoint's commit or rollback inside the transaction neither
    runs nor drops them: only the end of the outermost transaction does."""
    info = session.info
    if not info.get(_LISTENING):
        info[_LISTENING] = True
        event.listen(session.sync_session, "after_commit", _run_after_commit)
        event.listen(session.sync_session, "after_transaction_end", _forget_at_the_end)
    pending: dict[Hashable, Callable[[], None]] = info.setdefault(_AFTER_COMMIT, {})
    key = object() if once_per is None else once_per
    pending.setdefault(key, action)


def _run_after_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint committed: the transaction around it has not, yet
    for act in session.info.pop(_AFTER_COMMIT, {}).values():
        act()


def _forget_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended: committed (and run) or not
        session.info.pop(_AFTER_COMMIT, None)


_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


async def ensure_database(url: str) -> bool:
    """Create the database named in `url` on its server if it is missing. True when created."""
    parsed = make_url(url)
    name = parsed.database
    if not name or not _DB_NAME.match(name):
        raise ValueError(f"refusing to create a database with the name {name!r}")
    admin = parsed.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        # A name cannot be a bind parameter; it was checked against _DB_NAME above.
        await conn.execute(f'CREATE DATABASE "{name}"')
        log.info("created database %s", name)
        return True
    except asyncpg.DuplicateDatabaseError:
        return False
    finally:
        await conn.close()


def database_url(server_url: str, database: str) -> str:
    """The URL of `database` on the server of `server_url`, with the asyncpg driver."""
    return async_url(make_url(server_url).set(database=database).render_as_string(hide_password=False))


async def listen(
    database_url: str,
    channel: str,
    on_notice: Callable[[str], None],
    *,
    on_connect: Callable[[], None],
    on_lost: Callable[[], None] | None = None,
    name: str,
) -> None:
    """LISTEN on `channel` for as long as the task runs: `on_notice(payload)` for each NOTIFY, and
    `on_connect()` after every (re)connection, for what was notified while nobody listened, and
    `on_lost()` (if given) as soon as the connection is lost. A lost connection is opened again
    with a backoff; meanwhile nothing is heard (say in the log what the
    listener's owners do then: `name` names the listener)."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    backoff = 0.5
    while True:
        try:
            conn = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("%s cannot connect: %s", name, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
            continue
        backoff = 0.5
        lost = asyncio.Event()
        try:
            await conn.add_listener(channel, lambda _conn, _pid, _channel, payload: on_notice(payload))
            conn.add_termination_listener(lambda *_, lost=lost: lost.set())
            on_connect()
            started = time.monotonic()
            await lost.wait()
            log.warning("%s lost its connection after %.0fs", name, time.monotonic() - started)
            if on_lost is not None:
                on_lost()
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
