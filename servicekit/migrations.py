"""Alembic for every service: one env.py body, and upgrade-to-head callable from code.

A service's `migrations/env.py` is two lines: import its metadata, call `run_env(metadata)`.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from servicekit.db import async_url


def alembic_config(package: str, database_url: str) -> Config:
    module = importlib.import_module(package)
    assert module.__file__ is not None
    config = Config()
    config.set_main_option("script_location", str(Path(module.__file__).parent / "migrations"))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = async_url(database_url)
    return config


def upgrade(package: str, database_url: str, revision: str = "head") -> None:
    """Migrate a service's database. Blocking: it runs its own event loop (use a thread from async code)."""
    command.upgrade(alembic_config(package, database_url), revision)


async def upgrade_async(package: str, database_url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, package, database_url, revision)


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's env.py."""
    url = context.config.attributes.get("database_url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migration environment")

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def migrate(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
        finally:
            await engine.dispose()

    asyncio.run(run())
