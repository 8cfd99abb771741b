"""Batches, GET and the CSRF rules: batches only when switched on and at most ten, GET for queries only,
and no POST a browser could send cross-site."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.gateway_protection.gateways import LOGIN, RATE_LIMIT, REGISTER, TYPENAME, cost_of, only_code
from tests.e2e.test_account_graphql import PASSWORD, codes
from tests.helpers import unique_email


async def test_batches_are_refused_unless_batching_is_on(gateways):
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(gateways.shared.url, json=[{"query": TYPENAME}, {"query": TYPENAME}])

    assert response.status_code == 400
    assert only_code(response.json()) == "BATCHING_DISABLED"


async def test_a_batch_of_ten_runs_each_operation_on_its_own_and_eleven_are_refused(gateways):
    async with httpx.AsyncClient(timeout=30) as client:
        ten = await client.post(gateways.lenient.url, json=[{"query": RATE_LIMIT}] * 10)
        eleven = await client.post(gateways.lenient.url, json=[{"query": RATE_LIMIT}] * 11)

    assert ten.status_code == 200
    assert [b["data"]["rateLimit"]["cost"] for b in ten.json()] == [1] * 10
    assert all(cost_of(b)["requestedQueryCost"] == 1 for b in ten.json())
    assert eleven.status_code == 400
    assert only_code(eleven.json()) == "BATCH_TOO_LARGE"


async def test_get_runs_queries_but_refuses_mutations_and_writes_nothing(gateways):
    email = unique_email("get")
    register = {"input": {"name": "Get", "email": email, "password": PASSWORD}}
    async with httpx.AsyncClient(timeout=30) as client:
        query = await client.get(gateways.shared.url, params={"query": RATE_LIMIT})
        mutation = await client.get(
            gateways.shared.url, params={"query": REGISTER, "variables": json.dumps(register)}
        )
    login = await gateways.shared.post(LOGIN, {"email": email, "password": PASSWORD})

    assert query.status_code == 200
    assert query.json()["data"]["rateLimit"]["cost"] == 1
    assert mutation.status_code == 405
    assert mutation.headers["allow"] == "POST"
    assert only_code(mutation.json()) == "METHOD_NOT_ALLOWED"
    assert codes(login) == ["UNAUTHENTICATED"]  # the account was never created


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
async def test_a_post_a_browser_could_send_cross_site_is_refused_and_writes_nothing(gateways, content_type):
    email = unique_email("csrf")
    body = json.dumps(
        {"query": REGISTER, "variables": {"input": {"name": "C", "email": email, "password": PASSWORD}}}
    )
    headers = {"content-type": content_type} if content_type else {}
    async with httpx.AsyncClient(timeout=30) as client:
        request = client.build_request("POST", gateways.shared.url, content=body.encode(), headers=headers)
        if content_type is None:
            request.headers.pop("content-type", None)
        response = await client.send(request)
    login = await gateways.shared.post(LOGIN, {"email": email, "password": PASSWORD})

    assert response.status_code == 400
    assert only_code(response.json()) == "CSRF_CHECK_FAILED"
    assert codes(login) == ["UNAUTHENTICATED"]


async def test_a_simple_post_with_a_preflight_header_passes_the_csrf_check_but_only_json_is_read(gateways):
    async with httpx.AsyncClient(timeout=30) as client:
        plain = await client.post(
            gateways.shared.url,
            content=json.dumps({"query": TYPENAME}).encode(),
            headers={"content-type": "text/plain", "x-requested-with": "XMLHttpRequest"},
        )
        json_post = await client.post(gateways.shared.url, json={"query": TYPENAME})

    assert plain.status_code == 400
    assert only_code(plain.json()) == "BAD_REQUEST"
    assert json_post.json()["data"] == {"__typename": "Query"}
