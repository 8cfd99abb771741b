"""Persisted queries: the automatic round trip, refused hashes and documents, and allowlist mode with
documents registered by the CLI."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.gateway_protection.gateways import ALLOWED, only_code, sha256
from tests.e2e.gateway_protection.test_cost_budgets import spend_until_refused


async def test_an_automatic_persisted_query_round_trip(gateways):
    query = f"query Persisted{uuid.uuid4().hex} {{ rateLimit {{ cost }} }}"
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": sha256(query)}}

    miss = await gateways.shared.post(None, extensions=persisted)
    registered = await gateways.shared.post(query, extensions=persisted)
    hit = await gateways.shared.post(None, extensions=persisted)
    async with httpx.AsyncClient(timeout=30) as client:
        by_get = await client.get(
            gateways.shared.url,
            params={"extensions": json.dumps(persisted)},
            headers={"accept": "application/json"},
        )

    assert miss["errors"][0]["message"] == "PersistedQueryNotFound"
    assert only_code(miss) == "PERSISTED_QUERY_NOT_FOUND"
    assert registered["data"] == hit["data"] == by_get.json()["data"] == {"rateLimit": {"cost": 1}}


async def test_a_persisted_query_whose_hash_does_not_match_is_refused_and_not_kept(gateways):
    query = f"query Mismatch{uuid.uuid4().hex} {{ rateLimit {{ cost }} }}"
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": sha256(query + " ")}}

    refused = await gateways.shared.post(query, extensions=wrong)
    later = await gateways.shared.post(None, extensions=wrong)

    assert only_code(refused) == "BAD_USER_INPUT"
    assert only_code(later) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_document_sent_by_a_caller_over_budget_is_refused_and_not_kept(gateways):
    address = "127.0.0.21"
    await spend_until_refused(gateways.strict, address)
    # 52 of the 60 points: out of reach for more than two seconds after a refusal.
    query = f"query OverBudget{uuid.uuid4().hex} {{ products(first: 50) {{ edges {{ cursor }} }} }}"
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": sha256(query)}}

    refused = await gateways.strict.post(query, extensions=persisted, address=address)
    later = await gateways.strict.post(None, extensions=persisted, address="127.0.0.22")

    assert only_code(refused) == "RATE_LIMITED"
    assert refused["errors"][0]["extensions"]["cost"] == 52
    assert only_code(later) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_document_larger_than_the_stored_limit_runs_but_is_not_kept(gateways):
    query = f"query Large{uuid.uuid4().hex} {{ rateLimit {{ cost }} }} #" + "x" * (16 * 1024)
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": sha256(query)}}

    ran = await gateways.shared.post(query, extensions=persisted)
    later = await gateways.shared.post(None, extensions=persisted)

    assert ran["data"] == {"rateLimit": {"cost": 1}}
    assert only_code(later) == "PERSISTED_QUERY_NOT_FOUND"


async def test_an_invalid_document_is_never_persisted(gateways):
    query = f"query Invalid{uuid.uuid4().hex} {{ nothing }}"
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": sha256(query)}}

    first = await gateways.shared.post(query, extensions=persisted)
    later = await gateways.shared.post(None, extensions=persisted)

    assert only_code(first) == "GRAPHQL_VALIDATION_FAILED"
    assert only_code(later) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    ("persisted", "code"),
    [
        ({"version": 2, "sha256Hash": "0" * 64}, "PERSISTED_QUERY_NOT_SUPPORTED"),
        ({"version": 1, "sha256Hash": "not-a-hash"}, "BAD_USER_INPUT"),
        ({"version": 1}, "BAD_USER_INPUT"),
        ("hash", "PERSISTED_QUERY_NOT_SUPPORTED"),
    ],
)
async def test_a_malformed_persisted_query_is_refused(gateways, persisted, code):
    body = await gateways.shared.post(None, extensions={"persistedQuery": persisted})

    assert only_code(body) == code


async def test_allowlist_mode_runs_registered_documents_only(gateways):
    full = await gateways.allowlist.post(ALLOWED, address="127.0.0.20")
    by_hash = await gateways.allowlist.post(
        None,
        extensions={"persistedQuery": {"version": 1, "sha256Hash": sha256(ALLOWED)}},
        address="127.0.0.20",
    )
    unknown = await gateways.allowlist.post("query Other { rateLimit { cost } }", address="127.0.0.20")
    unknown_hash = await gateways.allowlist.post(
        None, extensions={"persistedQuery": {"version": 1, "sha256Hash": "a" * 64}}, address="127.0.0.20"
    )
    smuggled = "query Smuggled { rateLimit { cost } }"
    registration = await gateways.allowlist.post(
        smuggled,
        extensions={"persistedQuery": {"version": 1, "sha256Hash": sha256(smuggled)}},
        address="127.0.0.20",
    )

    assert full["data"] == by_hash["data"] == {"rateLimit": {"limit": 1000, "cost": 1}}
    assert unknown["data"] is None
    assert only_code(unknown) == "QUERY_NOT_ALLOWLISTED"
    assert only_code(unknown_hash) == "PERSISTED_QUERY_NOT_FOUND"
    assert only_code(registration) == "QUERY_NOT_ALLOWLISTED"


async def test_a_document_registered_with_the_cli_runs_in_allowlist_mode_without_a_restart(
    gateways, gateway, data_dir: Path
):
    name = f"Later{uuid.uuid4().hex}"  # the allowlist lives in Redis, which may outlive this run
    later = f"query {name} {{ rateLimit {{ remaining }} }}"
    path = data_dir / "later.graphql"
    path.write_text(later)
    before = await gateways.allowlist.post(later, address="127.0.0.20")

    result = gateway.run_cli("register-queries", str(path))
    after = await gateways.allowlist.post(later, address="127.0.0.20")

    assert only_code(before) == "QUERY_NOT_ALLOWLISTED"
    assert result.returncode == 0, result.stderr
    assert f"{sha256(later)}  cost     1  {name}" in result.stdout
    assert after["data"]["rateLimit"]["remaining"] >= 0


async def test_the_cli_refuses_a_document_over_the_cost_limit(gateway, data_dir: Path):
    path = data_dir / "too-costly.graphql"
    path.write_text("query Costly { products(first: 600) { edges { node { id } } } }")

    result = gateway.run_cli("register-queries", str(path))

    assert result.returncode == 1
    assert "costs 1204 points" in result.stderr
