"""Gateway protection over HTTP, as clients and abusers would meet it: query cost, per-caller cost
budgets, document limits, batches, GET and CSRF rules, production mode, persisted queries, the
login throttle through aliases and batches, and the N+1 guard.

Besides the session's gateway (test settings), this module starts gateways of its own against the
same services, each with the settings a test needs:

- `strict`: production mode, a 60-point bucket refilling at 20 points/s, depth limit 5;
- `lenient`: 200 aliases, cost up to 5,000, batching on, `extensions.rpcCalls` reported;
- `allowlist`: production mode executing registered documents only.

Anonymous callers are keyed by client address, so tests that meter anonymous callers connect
from addresses of their own on the loopback network (127.0.0.x).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecommerce_cli.stack import Platform, free_port
from tests.e2e.test_account_graphql import PASSWORD, admin_session, codes, sign_up
from tests.e2e.test_catalog_graphql import new_category, new_product
from tests.helpers import eventually, unique_email

RATE_LIMIT = "query Budget { rateLimit { limit cost remaining resetAt } }"
TYPENAME = "query { __typename }"
LOGIN = "mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) { accessToken } }"
REGISTER = """
mutation Register($input: RegisterInput!) { register(input: $input) { account { id } } }"""
FIFTEEN = "query Fifteen { " + " ".join(f"a{i}: rateLimit {{ cost }}" for i in range(15)) + " }"

# 15 aliases: 7 in a fragment spread twice, one more outside. Sixteen adds a second one outside.
ALIASES_15 = """
query Aliases { ...Seven ...Seven extra: rateLimit { cost } }
fragment Seven on Query {
  a: rateLimit { cost } b: rateLimit { cost } c: rateLimit { cost } d: rateLimit { cost }
  e: rateLimit { cost } f: rateLimit { cost } g: rateLimit { cost }
}"""
ALIASES_16 = ALIASES_15.replace(
    "extra: rateLimit { cost }", "extra: rateLimit { cost } more: rateLimit { cost }"
)

TOKENS_2000 = "#\n" * 1997 + "{ __typename }"  # every comment is a token, and so are `{ __typename }`
TOKENS_2001 = "#\n" * 1998 + "{ __typename }"

DIRECTIVES_2 = "query { rateLimit @include(if: true) @skip(if: false) { cost } }"
DIRECTIVES_3 = "query { rateLimit @include(if: true) @skip(if: false) @include(if: true) { cost } }"

# Two connections of 98: (2 + 98) * (edges + node + price + category + pageInfo) * 2 = 1000.
COST_1000 = """
query AtTheLimit {
  cheap: products(first: 98, sort: PRICE_ASC) { pageInfo { hasNextPage } edges { node { id price { amount } category { slug } } } }
  dear: products(first: 98, sort: PRICE_DESC) { pageInfo { hasNextPage } edges { node { id price { amount } category { slug } } } }
}"""
COST_1001 = COST_1000.replace("query AtTheLimit {", "query OverTheLimit {\n  rateLimit { cost }")

DEPTH_5 = "query { products(first: 1) { edges { node { category { name } } } } }"
DEPTH_6 = """
query { myOrders(first: 1) { edges { node { ...Lines } } } }
fragment Lines on Order { items { product { name } } }"""

NESTED_ORDERS = """
query Nested {
  myOrders(first: 20) {
    totalCount
    edges { node { id items { quantity product { name category { name productCount } } } payment { status } } }
  }
}"""
CREATE_ORDER = """
mutation Place($input: CreateOrderInput!) { createOrder(input: $input) { id status } }"""

SUGGESTION_BAIT = [
    ("query { rateLimt { cost } }", None),
    ("query { products(frist: 2) { totalCount } }", None),
    ("query($s: ProductSrt) { products(sort: $s) { totalCount } }", None),
    ("query { products(sort: PRICE_AS) { totalCount } }", None),
    ("query($s: ProductSort) { products(sort: $s) { totalCount } }", {"s": "PRICE_AS"}),
    (
        "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
        {"i": {"nme": "A", "email": "a@b.c", "password": "x"}},
    ),
    ("query { rateLimit { cost } } fragment F on RateLimt { cost }", None),
]


def sha256(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


# -- gateways --------------------------------------------------------------------------------


@dataclass
class Endpoint:
    url: str
    process: subprocess.Popen[bytes] | None = None

    async def send(
        self,
        query: str | None,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        extensions: dict[str, Any] | None = None,
        address: str = "127.0.0.1",
        operation_name: str | None = None,
    ) -> httpx.Response:
        payload: dict[str, Any] = {"variables": variables or {}}
        if query is not None:
            payload["query"] = query
        if extensions is not None:
            payload["extensions"] = extensions
        if operation_name is not None:
            payload["operationName"] = operation_name
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with client_at(address) as client:
            return await client.post(self.url, json=payload, headers=headers)

    async def post(self, query: str | None, variables: dict[str, Any] | None = None, **kwargs: Any) -> dict:
        """The decoded answer (the same call as the session's `gateway.post`)."""
        response = await self.send(query, variables, **kwargs)
        return response.json()


def client_at(address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address` (any 127.0.0.x reaches the gateway)."""
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=address), timeout=30)


def spawn_gateway(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def start_gateway(platform: Platform, log_dir: Path, name: str, settings: dict[str, str]) -> Endpoint:
    port = free_port()
    env = {
        **platform.environment(),
        "GATEWAY_PORT": str(port),
        "GATEWAY_METRICS_PORT": str(free_port()),
        "GATEWAY_RATE_LIMIT_CAPACITY": "1000",
        "GATEWAY_RATE_LIMIT_RESTORE_RATE": "50",
        **settings,
    }
    process = spawn_gateway(env, log_dir / f"gateway-{name}.log")
    endpoint = Endpoint(f"http://127.0.0.1:{port}/graphql", process)

    async def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the {name} gateway exited with code {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        return False

    await eventually(healthy, timeout=60, interval=0.1, what=f"the {name} gateway")
    return endpoint


ALLOWED = "query Allowed { rateLimit { limit cost } }"


@dataclass
class Gateways:
    shared: Endpoint
    strict: Endpoint
    lenient: Endpoint
    allowlist: Endpoint


@pytest.fixture(scope="module")
async def gateways(gateway, platform: Platform, data_dir: Path) -> AsyncIterator[Gateways]:
    allowlist_file = data_dir / "allowlist.json"
    allowlist_file.write_text(json.dumps([ALLOWED, TYPENAME]))
    logs = data_dir / "logs"
    strict, lenient, allowlist = await asyncio.gather(
        start_gateway(
            platform,
            logs,
            "strict",
            {
                "ECOMMERCE_ENV": "production",
                "GATEWAY_RATE_LIMIT_CAPACITY": "60",
                "GATEWAY_RATE_LIMIT_RESTORE_RATE": "20",
                "GATEWAY_MAX_DEPTH": "5",
            },
        ),
        start_gateway(
            platform,
            logs,
            "lenient",
            {
                "GATEWAY_MAX_ALIASES": "200",
                "GATEWAY_MAX_QUERY_COST": "5000",
                "GATEWAY_RATE_LIMIT_CAPACITY": "5000",
                "GATEWAY_RATE_LIMIT_RESTORE_RATE": "1000000",
                "GATEWAY_BATCHING": "true",
                "GATEWAY_REPORT_RPC_CALLS": "true",
            },
        ),
        start_gateway(
            platform,
            logs,
            "allowlist",
            {
                "ECOMMERCE_ENV": "production",
                "GATEWAY_PERSISTED_QUERIES_ONLY": "true",
                "GATEWAY_PERSISTED_QUERIES_FILE": str(allowlist_file),
            },
        ),
    )
    try:
        yield Gateways(Endpoint(gateway.url), strict, lenient, allowlist)
    finally:
        for endpoint in (strict, lenient, allowlist):
            assert endpoint.process is not None
            endpoint.process.terminate()
        for endpoint in (strict, lenient, allowlist):
            assert endpoint.process is not None
            try:
                endpoint.process.wait(10)
            except subprocess.TimeoutExpired:
                endpoint.process.kill()
                endpoint.process.wait()


def cost_of(body: dict) -> dict:
    return body["extensions"]["cost"]


def only_code(body: dict) -> str:
    assert len(body.get("errors", [])) == 1, body
    return body["errors"][0]["extensions"]["code"]


# -- cost ------------------------------------------------------------------------------------


async def test_every_answer_reports_its_cost_and_the_callers_budget(gateways):
    answered = await gateways.strict.post(RATE_LIMIT, address="127.0.0.11")
    refused = await gateways.strict.post("query { nothing }", address="127.0.0.11")

    assert answered["data"]["rateLimit"]["limit"] == 60
    assert answered["data"]["rateLimit"]["cost"] == 1
    assert answered["data"]["rateLimit"]["remaining"] == 59  # a new caller starts full
    assert datetime.fromisoformat(answered["data"]["rateLimit"]["resetAt"]).tzinfo is not None
    assert cost_of(answered)["requestedQueryCost"] == cost_of(answered)["actualQueryCost"] == 1
    assert cost_of(answered)["throttleStatus"]["maximumAvailable"] == 60
    assert cost_of(answered)["throttleStatus"]["restoreRate"] == 20.0
    assert 0 <= cost_of(answered)["throttleStatus"]["currentlyAvailable"] <= 60
    assert only_code(refused) == "GRAPHQL_VALIDATION_FAILED"
    assert (cost_of(refused)["requestedQueryCost"], cost_of(refused)["actualQueryCost"]) == (0, 0)
    assert cost_of(refused)["throttleStatus"]["maximumAvailable"] == 60


@pytest.fixture(scope="module")
async def admin(gateway) -> str:
    return (await admin_session(gateway))["accessToken"]


async def test_a_query_at_the_cost_limit_runs_and_refunds_what_it_did_not_return(gateways, admin):
    await new_product(gateways.shared, admin, await new_category(gateways.shared, admin))

    body = await gateways.shared.post(COST_1000)

    assert "errors" not in body, body
    returned = len(body["data"]["cheap"]["edges"])
    assert 1 <= returned < 98
    assert cost_of(body)["requestedQueryCost"] == 1000
    # What came back: (2 + items returned) * 5 per connection, both of the same size here.
    assert cost_of(body)["actualQueryCost"] == 2 * (2 + returned) * 5


async def test_a_query_over_the_cost_limit_is_refused_with_its_cost_before_it_runs(gateways):
    body = await gateways.shared.post(COST_1001)

    assert body["data"] is None
    assert only_code(body) == "QUERY_TOO_COMPLEX"
    assert body["errors"][0]["extensions"]["cost"] == 1001
    assert body["errors"][0]["extensions"]["maximumCost"] == 1000
    assert (cost_of(body)["requestedQueryCost"], cost_of(body)["actualQueryCost"]) == (1001, 0)


# -- per-caller budgets ----------------------------------------------------------------------


async def spend_until_refused(endpoint: Endpoint, address: str, token: str | None = None) -> dict:
    for _ in range(30):
        body = await endpoint.post(FIFTEEN, address=address, token=token)
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


# -- document limits -------------------------------------------------------------------------


async def test_depth_at_the_limit_runs_and_one_level_more_is_refused(gateways):
    under = await gateways.strict.post(DEPTH_5, address="127.0.0.17")
    over = await gateways.strict.post(DEPTH_6, address="127.0.0.17")

    assert "errors" not in under, under
    assert over["data"] is None
    assert only_code(over) == "QUERY_TOO_DEEP"
    assert over["errors"][0]["extensions"]["depth"] == 6


async def test_aliases_are_counted_inside_fragments_at_every_spread(gateways):
    under = await gateways.shared.post(ALIASES_15)
    over = await gateways.shared.post(ALIASES_16)

    assert "errors" not in under, under
    assert len(under["data"]) == 8
    assert only_code(over) == "TOO_MANY_ALIASES"
    assert over["errors"][0]["extensions"]["aliases"] == 16


async def test_a_document_of_fragments_that_spread_each_other_twice_is_refused_quickly(gateways):
    levels = 120
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    document = f"query {{ ...F0 }} {fragments} fragment F{levels} on Query {{ a: rateLimit {{ cost }} }}"

    body = await gateways.shared.post(document)

    assert only_code(body) == "TOO_MANY_ALIASES"
    assert body["errors"][0]["extensions"]["aliases"] == 2**53 - 1  # 2**120, capped for JSON


async def test_tokens_at_the_limit_run_and_one_more_is_refused(gateways):
    under = await gateways.shared.post(TOKENS_2000)
    over = await gateways.shared.post(TOKENS_2001)

    assert under["data"] == {"__typename": "Query"}, under
    assert over["data"] is None
    assert only_code(over) == "TOO_MANY_TOKENS"


async def test_two_directives_on_a_field_run_and_a_third_is_refused(gateways):
    under = await gateways.shared.post(DIRECTIVES_2)
    over = await gateways.shared.post(DIRECTIVES_3)

    assert under["data"] == {"rateLimit": {"cost": 1}}
    assert over["data"] is None
    assert "TOO_MANY_DIRECTIVES" in codes(over)
    assert set(codes(over)) == {"TOO_MANY_DIRECTIVES", "GRAPHQL_VALIDATION_FAILED"}  # and @include twice


async def test_a_query_of_100_kb_runs_and_one_byte_more_is_refused(gateways):
    document = "{ __typename }"
    under = await gateways.shared.post(document + " " * (100 * 1024 - len(document)))
    over = await gateways.shared.post(document + " " * (100 * 1024 + 1 - len(document)))

    assert under["data"] == {"__typename": "Query"}
    assert over["data"] is None
    assert only_code(over) == "QUERY_TOO_LARGE"


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


async def test_a_variable_that_does_not_fit_its_type_is_bad_input_not_masked(gateways):
    body = await gateways.shared.post(
        "query($s: ProductSort) { products(sort: $s) { totalCount } }", {"s": "SIDEWAYS"}
    )

    assert only_code(body) == "BAD_USER_INPUT"
    assert "SIDEWAYS" in body["errors"][0]["message"]


# -- production mode -------------------------------------------------------------------------


async def test_production_refuses_introspection_but_answers_typename(gateways):
    schema = await gateways.strict.post("query { __schema { queryType { name } } }", address="127.0.0.18")
    type_ = await gateways.strict.post('query { __type(name: "Product") { name } }', address="127.0.0.18")
    typename = await gateways.strict.post(TYPENAME, address="127.0.0.18")

    assert schema["data"] is None
    assert set(codes(schema)) == {"INTROSPECTION_DISABLED"}
    assert set(codes(type_)) == {"INTROSPECTION_DISABLED"}
    assert typename == {"data": {"__typename": "Query"}, "extensions": typename["extensions"]}


@pytest.mark.parametrize(("document", "variables"), SUGGESTION_BAIT)
async def test_production_errors_never_suggest_names(gateways, document, variables):
    production = await gateways.strict.post(document, variables, address="127.0.0.19")
    development = await gateways.shared.post(document, variables)

    assert production["errors"]
    assert not any("Did you mean" in e["message"] for e in production["errors"])
    assert any("Did you mean" in e["message"] for e in development["errors"])  # the bait works


# -- persisted queries -----------------------------------------------------------------------


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


# -- the login throttle through aliases and batches ----------------------------------------

LOGIN_METHOD = "/ecommerce.account.v1.AccountService/Login"


def aliased_logins(count: int) -> str:
    logins = " ".join(
        f"l{i}: login(email: $email, password: $password) {{ accessToken }}" for i in range(count)
    )
    return f"mutation Many($email: String!, $password: String!) {{ {logins} }}"


async def test_every_aliased_login_calls_the_login_rpc(gateways):
    email = unique_email("aliases")
    await sign_up(gateways.shared, email=email)

    body = await gateways.lenient.post(aliased_logins(100), {"email": email, "password": PASSWORD})

    assert "errors" not in body, body
    assert len({v["accessToken"] for v in body["data"].values()}) == 100
    assert body["extensions"]["rpcCalls"] == {LOGIN_METHOD: 100}
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1000


async def test_aliased_wrong_logins_trip_the_login_throttle_exactly_as_single_requests_do(gateways):
    """Mutations run one after another and `login` is non-null, so the first failed attempt ends
    the document: 100 aliases are one attempt, counted like a request; the throttle trips after as
    many attempts either way."""
    by_document, by_request = unique_email("doc"), unique_email("req")
    for email in (by_document, by_request):
        await sign_up(gateways.shared, email=email)
    wrong = "not the password"

    documents = [
        await gateways.lenient.post(aliased_logins(100), {"email": by_document, "password": wrong})
        for _ in range(6)
    ]
    requests = [
        await gateways.lenient.post(LOGIN, {"email": by_request, "password": wrong}) for _ in range(6)
    ]
    right_password = await gateways.lenient.post(LOGIN, {"email": by_document, "password": PASSWORD})

    assert [codes(b) for b in documents] == [codes(b) for b in requests], (documents, requests)
    assert [codes(b) for b in documents] == [["UNAUTHENTICATED"]] * 5 + [["RATE_LIMITED"]]
    assert [b["extensions"]["rpcCalls"] for b in documents] == [{LOGIN_METHOD: 1}] * 6
    assert codes(right_password) == ["RATE_LIMITED"]


async def test_each_login_of_a_batch_is_an_attempt_against_the_throttle(gateways):
    email = unique_email("batch")
    await sign_up(gateways.shared, email=email)
    batch = [{"query": LOGIN, "variables": {"email": email, "password": "not the password"}}] * 10

    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(gateways.lenient.url, json=batch)
    right_password = await gateways.lenient.post(LOGIN, {"email": email, "password": PASSWORD})

    results = [codes(b) for b in response.json()]
    assert [b["extensions"]["rpcCalls"] for b in response.json()] == [{LOGIN_METHOD: 1}] * 10
    assert set(map(tuple, results)) <= {("UNAUTHENTICATED",), ("RATE_LIMITED",)}
    # The operations of a batch run concurrently: at least the first five attempts fail as
    # attempts (more may pass the throttle's check before the failures are counted, as with
    # concurrent requests); afterwards the throttle holds.
    assert results.count(["UNAUTHENTICATED"]) >= 5
    assert codes(right_password) == ["RATE_LIMITED"]


# -- the N+1 guard ---------------------------------------------------------------------------

ORDERS_CALLS = {
    "/ecommerce.order.v1.OrderService/ListMyOrders": 1,
    "/ecommerce.catalog.v1.CatalogService/BatchGetProducts": 1,
    "/ecommerce.catalog.v1.CatalogService/ListCategories": 1,
    "/ecommerce.payment.v1.PaymentService/BatchGetPaymentsByOrder": 1,
}


async def place_orders(gateways: Gateways, token: str, products: list[str], count: int) -> None:
    for i in range(count):
        lines = [{"productId": products[i % 2], "quantity": 1}, {"productId": products[2], "quantity": 1}]
        body = await gateways.shared.post(
            CREATE_ORDER,
            {
                "input": {
                    "items": lines,
                    "paymentToken": "tok_visa",
                    "shippingAddress": {
                        "name": "Ada",
                        "line1": "1 Main St",
                        "city": "Berlin",
                        "postalCode": "10115",
                        "country": "DE",
                    },
                }
            },
            token=token,
        )
        assert "errors" not in body, body


async def test_nested_orders_make_one_batched_call_per_service_whatever_the_number_of_orders(gateways, admin):
    slug = await new_category(gateways.shared, admin)
    products = [(await new_product(gateways.shared, admin, slug, stock=500))["id"] for _ in range(3)]
    many, one = (
        (await sign_up(gateways.shared))["accessToken"],
        (await sign_up(gateways.shared))["accessToken"],
    )
    await place_orders(gateways, many, products, 20)
    await place_orders(gateways, one, products, 1)

    twenty = await gateways.lenient.post(NESTED_ORDERS, token=many)
    single = await gateways.lenient.post(NESTED_ORDERS, token=one)

    assert "errors" not in twenty, twenty
    assert twenty["data"]["myOrders"]["totalCount"] == 20
    assert sum(len(e["node"]["items"]) for e in twenty["data"]["myOrders"]["edges"]) == 40
    assert twenty["extensions"]["rpcCalls"] == ORDERS_CALLS
    assert single["extensions"]["rpcCalls"] == ORDERS_CALLS
