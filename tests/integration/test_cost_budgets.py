"""The per-caller cost buckets and the persisted query store against the session's real Redis."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ecommerce_cli.stack import free_port
from gateway.persisted import PersistedQueries, RegistrationError, register_files, sha256
from gateway.ratelimit import CostBucket
from gateway.settings import GatewaySettings
from tests.helpers import eventually

# A restore rate so slow that no point comes back while a test runs: the counts are exact.
FROZEN = 1e-9


@pytest.fixture
async def redis(infra) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(infra.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def caller() -> str:
    return f"account:{uuid.uuid4()}"


async def test_a_new_caller_starts_with_a_full_bucket_and_pays_what_it_asks(redis):
    bucket = CostBucket(redis, capacity=100, restore_rate=FROZEN)
    who = caller()

    first = await bucket.take(who, 30)
    second = await bucket.take(who, 70)
    refused = await bucket.take(who, 1)

    assert (first.admitted, round(first.available)) == (True, 70)
    assert (second.admitted, round(second.available)) == (True, 0)
    assert (refused.admitted, round(refused.available)) == (False, 0)
    assert refused.retry_after(1) >= 1


async def test_a_cached_answer_needs_its_requested_cost_but_is_charged_its_actual_one(redis):
    bucket = CostBucket(redis, capacity=100, restore_rate=FROZEN)
    who = caller()

    first = await bucket.take_known(who, 60, 20)
    second = await bucket.take_known(who, 60, 20)
    refused = await bucket.take_known(who, 61, 1)

    assert (first.admitted, round(first.available)) == (True, 80)
    assert (second.admitted, round(second.available)) == (True, 60)
    assert (refused.admitted, round(refused.available)) == (False, 60)


async def test_a_refund_gives_back_what_an_operation_did_not_use_but_never_more_than_capacity(redis):
    bucket = CostBucket(redis, capacity=100, restore_rate=FROZEN)
    who = caller()

    await bucket.take(who, 60)
    refunded = await bucket.refund(who, 25)
    overflowing = await bucket.refund(who, 500)

    assert round(refunded.available) == 65
    assert round(overflowing.available) == 100


async def test_an_operation_bigger_than_what_is_left_is_refused_and_charges_nothing(redis):
    bucket = CostBucket(redis, capacity=100, restore_rate=FROZEN)
    who = caller()

    await bucket.take(who, 90)
    refused = await bucket.take(who, 11)
    peeked = await bucket.peek(who)

    assert refused.admitted is False
    assert round(peeked.available) == 10


async def test_concurrent_operations_never_drive_a_bucket_below_zero(redis):
    bucket = CostBucket(redis, capacity=100, restore_rate=FROZEN)
    who = caller()

    results = await asyncio.gather(*(bucket.take(who, 7) for _ in range(50)))

    assert sum(r.admitted for r in results) == 14  # 14 * 7 = 98 <= 100 < 15 * 7
    assert min(r.available for r in results) >= 0
    assert round((await bucket.peek(who)).available) == 2


async def test_callers_have_buckets_of_their_own(redis):
    bucket = CostBucket(redis, capacity=50, restore_rate=FROZEN)
    spender, other = caller(), caller()

    await bucket.take(spender, 50)

    assert (await bucket.take(spender, 1)).admitted is False
    assert (await bucket.take(other, 50)).admitted is True


async def test_an_empty_bucket_refills_at_the_restore_rate(redis):
    bucket = CostBucket(redis, capacity=100, restore_rate=200.0)
    who = caller()
    await bucket.take(who, 100)

    refilled = await eventually(lambda: _admitted(bucket, who, 40), timeout=5, what="40 points restored")

    assert refilled.admitted is True


async def _admitted(bucket: CostBucket, who: str, cost: int):
    result = await bucket.take(who, cost)
    return result if result.admitted else None


async def test_with_redis_unreachable_operations_are_admitted_and_the_budget_is_unknown(caplog):
    unreachable = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1.0)
    bucket = CostBucket(unreachable, capacity=100, restore_rate=50.0)
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
            first = await bucket.take(caller(), 1000)
            second = await bucket.take(caller(), 1000)
    finally:
        await unreachable.aclose()

    assert (first.admitted, first.available, first.reset_at()) == (True, None, None)
    assert first.throttle_status() == {
        "maximumAvailable": 100,
        "currentlyAvailable": None,
        "restoreRate": 50.0,
    }
    assert second.admitted is True
    warnings = [r for r in caplog.records if "cost budgets unavailable" in r.getMessage()]
    assert len(warnings) == 1  # Redis is not asked again for a few seconds, nor the log flooded


# -- persisted queries ---------------------------------------------------------------------------


async def test_an_automatically_persisted_query_is_found_by_its_hash(redis):
    store = PersistedQueries(redis, ttl=60, allowlist_only=False)
    query = f"query Q{uuid.uuid4().hex} {{ rateLimit {{ cost }} }}"

    before = await store.lookup(sha256(query))
    await store.remember(sha256(query), query)

    assert before is None
    assert await store.lookup(sha256(query)) == query
    assert 0 < await redis.ttl(PersistedQueries.AUTOMATIC + sha256(query)) <= 60


async def test_automatic_documents_go_to_the_cache_and_the_allowlist_stays_with_the_security_state(
    redis, infra
):
    cache = aioredis.from_url(infra.redis_url.rsplit("/", 1)[0] + "/1")
    try:
        store = PersistedQueries(redis, cache=cache, ttl=60, allowlist_only=False, max_bytes=1024)
        query = f"query C{uuid.uuid4().hex} {{ rateLimit {{ cost }} }}"
        large = f"query L{uuid.uuid4().hex} {{ rateLimit {{ cost }} }} #" + "x" * 1024

        kept = await store.remember(sha256(query), query)
        kept_large = await store.remember(sha256(large), large)

        assert (kept, kept_large) == (True, False)
        assert await cache.get(PersistedQueries.AUTOMATIC + sha256(query)) == query.encode()
        assert await redis.exists(PersistedQueries.AUTOMATIC + sha256(query)) == 0
        assert await cache.exists(PersistedQueries.AUTOMATIC + sha256(large)) == 0
        assert await store.lookup(sha256(query)) == query
    finally:
        await cache.aclose()


async def test_allowlist_mode_finds_only_registered_documents(redis, infra, tmp_path: Path):
    remembered = f"query R{uuid.uuid4().hex} {{ rateLimit {{ cost }} }}"
    registered = f"query A{uuid.uuid4().hex} {{ rateLimit {{ limit remaining }} }}"
    await PersistedQueries(redis, ttl=60, allowlist_only=False).remember(sha256(remembered), remembered)
    path = tmp_path / "allowed.graphql"
    path.write_text(registered)
    settings = GatewaySettings(redis_url=infra.redis_url)

    [result] = await register_files([path], settings)
    store = PersistedQueries(redis, ttl=60, allowlist_only=True)

    assert (result.sha256, result.cost) == (sha256(registered), 1)
    assert await store.lookup(sha256(registered)) == registered
    assert await store.lookup(sha256(remembered)) is None


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("query { nothing }", "Cannot query field"),
        ("query { products(first: 600) { edges { node { id } } } }", "costs 1204 points"),
        ("query { me { id } ", "Syntax Error"),
    ],
)
async def test_an_invalid_or_too_costly_document_is_not_registered(
    redis, infra, tmp_path: Path, document, reason
):
    path = tmp_path / "bad.json"
    path.write_text(f'["{document}"]'.replace("\n", " "))

    with pytest.raises(RegistrationError, match=reason):
        await register_files([path], GatewaySettings(redis_url=infra.redis_url))

    assert await redis.hget(PersistedQueries.ALLOWLIST, sha256(document)) is None
