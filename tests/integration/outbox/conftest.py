"""The outbox and inbox tests' fixtures: a database with the kit's tables, and a topic per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from servicekit.db import create_engine, database_url, ensure_database, session_factory
from servicekit.kafka import create_producer, dead_letter_topic, ensure_topics
from tests.integration.outbox.kit import metadata


@pytest.fixture(scope="module")
async def kit(infra) -> AsyncIterator[dict]:
    url = database_url(infra.postgres_url, "servicekit_it")
    await ensure_database(url)
    engine = create_engine(url, pool_size=5)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    producer = create_producer(infra.kafka_bootstrap_servers, idempotent=False, client_id="kit-test")
    await producer.start()
    try:
        yield {
            "url": url,
            "engine": engine,
            "sessions": session_factory(engine),
            "producer": producer,
            "bootstrap": infra.kafka_bootstrap_servers,
        }
    finally:
        await producer.stop()
        await engine.dispose()


@pytest.fixture
async def topic(kit) -> str:
    name = f"kit-{uuid.uuid4().hex[:10]}"
    await ensure_topics(kit["bootstrap"], [name, dead_letter_topic(name)], partitions=2)
    return name
