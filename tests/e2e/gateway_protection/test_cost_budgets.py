"""Per-caller cost budgets: a caller who spends its bucket waits for it to refill, a signed-in caller is
metered by account, and concurrent requests never overdraw a bucket."""

from __future__ import annotations

import asyncio
import time

from tests.e2e.gateway_protection.gateways import PROXY, Endpoint, client_at, cost_of, only_code
from tests.e2e.test_account_graphql import sign_up
from tests.helpers import eventually

# 52 of the strict gateway's 60 points: out of reach for seconds after a refusal.
FIFTY_TWO = "query FiftyTwo { products(first: 50) { edges { cursor } } }"
FIFTEEN = "query Fifteen { " + " ".join(f"a{i}: rateLimit {{ cost }}" for i in range(15)) + " }"


async def spend_until_refused(
    endpoint: Endpoint, address: str, token: str | None = None, forwarded_for: list[str] | None = None
) -> dict:
    for attempt in range(30):
        headers = {"X-Forwarded-For": forwarded_for[attempt % len(forwarded_for)]} if forwarded_for else None
        body = await endpoint.post(FIFTEEN, address=address, token=token, headers=headers)
        if body.get("errors"):
            return body
    raise AssertionError("the bucket never ran out")


async def test_a_caller_who_spends_its_bucket_is_rate_limited_until_it_refills(gateways):
    signed_in = (await sign_up(gateways.shared))["accessToken"]

    refused = await spend_until_refused(gateways.strict, "127.0.0.12")
    neighbour = await gateways.strict.post(FIFTEEN, address="127.0.0.13")
    same_address_signed_in = await gateways.strict.post(FIFTEEN, address="127.0.0.12", token=signed_in)

    assert refused["data"] is None
    assert only_code(refused) == "RATE_LIMITED"
    assert refused["errors"][0]["extensions"]["cost"] == 15
    assert refused["errors"][0]["extensions"]["retryAfter"] >= 1
    assert (cost_of(refused)["requestedQueryCost"], cost_of(refused)["actualQueryCost"]) == (15, 0)
    assert cost_of(refused)["throttleStatus"]["currentlyAvailable"] < 15
    assert "errors" not in neighbour
    assert "errors" not in same_address_signed_in  # a signed-in caller has its own bucket

    async def admitted_again() -> bool:
        return "errors" not in await gateways.strict.post(FIFTEEN, address="127.0.0.12")

    await eventually(admitted_again, timeout=10, interval=0.2, what="the bucket to refill")


async def test_clients_behind_a_trusted_proxy_have_buckets_of_their_own(gateways):
    refused = await spend_until_refused(gateways.strict, PROXY, forwarded_for=["198.51.100.1"])
    forged = await gateways.strict.post(
        FIFTY_TWO, address=PROXY, headers={"X-Forwarded-For": "198.51.100.2, 198.51.100.1"}
    )
    other_client = await gateways.strict.post(
        FIFTY_TWO, address=PROXY, headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.2"}
    )

    assert only_code(refused) == "RATE_LIMITED"
    assert only_code(forged) == "RATE_LIMITED"  # only the right-most hop is the proxy's word
    assert "errors" not in other_client


async def test_forwarded_for_from_a_caller_that_is_no_trusted_proxy_is_ignored(gateways):
    refused = await spend_until_refused(
        gateways.strict, "127.0.0.31", forwarded_for=[f"198.51.100.{i}" for i in range(10, 40)]
    )

    assert only_code(refused) == "RATE_LIMITED"


async def test_a_signed_in_caller_is_metered_by_account_wherever_it_calls_from(gateways):
    token = (await sign_up(gateways.shared))["accessToken"]

    refused = await spend_until_refused(gateways.strict, "127.0.0.14", token=token)
    elsewhere = await gateways.strict.post(FIFTEEN, address="127.0.0.15", token=token)
    anonymous_there = await gateways.strict.post(FIFTEEN, address="127.0.0.15")

    assert only_code(refused) == "RATE_LIMITED"
    assert only_code(elsewhere) == "RATE_LIMITED"
    assert "errors" not in anonymous_there


async def test_concurrent_requests_never_drive_a_bucket_below_zero(gateways):
    started = time.monotonic()
    async with client_at("127.0.0.16") as client:
        responses = await asyncio.gather(
            *(client.post(gateways.strict.url, json={"query": FIFTEEN}) for _ in range(30))
        )
    elapsed = time.monotonic() - started
    bodies = [r.json() for r in responses]

    admitted = [b for b in bodies if "errors" not in b]
    refused = [b for b in bodies if b.get("errors")]
    assert {only_code(b) for b in refused} == {"RATE_LIMITED"}
    assert all(cost_of(b)["throttleStatus"]["currentlyAvailable"] >= 0 for b in bodies)
    # Never more than a full bucket plus what was restored while the requests ran.
    assert len(admitted) * 15 <= 60 + 20 * elapsed
