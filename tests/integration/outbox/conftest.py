"""The outbox and inbox tests' fixtures: a database with the kit's tables, and a topic per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from servicekit.kafka import dead_letter_topic, ensure_topics
from tests.integration.outbox.kit import kit_resources


@pytest.fixture(scope="module")
async def kit(infra) -> AsyncIterator[dict]:
    async with kit_resources(infra, "servicekit_it", "kit-test") as resources:
        yield resources


@pytest.fixture
async def topic(kit) -> str:
    name = f"kit-{uuid.uuid4().hex[:10]}"
    await ensure_topics(kit["bootstrap"], [name, dead_letter_topic(name)], partitions=2)
    return name
