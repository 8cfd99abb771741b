"""Every service's migrations build exactly the schema its models describe, and run twice harmlessly."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ecommerce_cli.stack import available_services
from servicekit.db import create_engine, database_url, ensure_database
from servicekit.migrations import upgrade_async


@pytest.mark.parametrize("service", available_services())
async def test_migrations_match_the_models(infra, service):
    url = database_url(infra.postgres_url, f"{service}_migrations_it")
    await ensure_database(url)
    await upgrade_async(service, url)
    await upgrade_async(service, url)  # a second run changes nothing and does not fail
    metadata = importlib.import_module(f"{service}.models").metadata
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()

    assert diff == [], f"{service}: models and migrations disagree; add a migration"
