"""Every root field of the gateway's schema, fuzzed over HTTP with documents generated from the SDL.

For each Query, Mutation and Subscription field, and for each kind of caller (anonymous, a
CUSTOMER, an ADMIN), hypothesis-graphql writes valid documents: random selections and random
argument values, mixed with values that reach deeper (ids of real products, orders, payments and
webhooks, payment tokens, event types, a cursor, the e-mail, password and refresh token of a real
account). Whatever the document, the answer is one a client can act on:

- never an HTTP 5xx, always a JSON body;
- every error carries an `extensions.code`, and none is INTERNAL ("internal error");
- no error shows the implementation: no exception text, traceback, class or module name, file
  path, SQL or gRPC status.

Refusals are proper answers (BAD_USER_INPUT, FORBIDDEN, QUERY_TOO_COMPLEX, RATE_LIMITED from the
login throttle, ...). Subscriptions are served over WebSocket only: over HTTP they are refused
with BAD_REQUEST. Documents with one schema violation each (hypothesis-graphql's negative mode)
are refused before anything runs.

Hypothesis runs examples synchronously, while the session's fixtures live on its event loop. So
each field's examples run in a worker thread (`asyncio.to_thread`) and post with a synchronous
client: the gateway is another process, and the loop has nothing to do until the thread ends.

What the fuzzing writes stays in the shared database: accounts, categories and products with
random names and SKUs, orders of the fixture's product. Other tests count only what they created,
and the demo catalog's slugs and SKUs are not among the values drawn. Webhooks it creates are
deleted at the end, so that no later test's events are delivered to them. The accounts whose
sessions the fuzzing may end (`logout`) or whose e-mail it may throttle are its own.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries

from tests.e2e.test_account_graphql import (
    LOGIN,
    PASSWORD,
    SET_ROLE,
    admin_session,
    codes,
    first_error,
    sign_up,
)
from tests.e2e.test_catalog_graphql import (
    CREATE_PRODUCT,
    PRODUCTS,
    SEARCH,
    new_category,
    new_product,
    product_input,
)
from tests.e2e.test_order_saga import CREATE_ORDER, ORDER, order_input
from tests.helpers import eventually, unique_email

SCHEMA = graphql.build_schema((Path(__file__).parents[2] / "gateway" / "schema.graphql").read_text())
# hypothesis-graphql writes queries and mutations; a subscription's document is a query's with
# another keyword, so its fields are generated as those of a schema whose Query is Subscription.
SUBSCRIPTIONS_AS_QUERIES = graphql.GraphQLSchema(query=SCHEMA.subscription_type)
ROOTS = [r for r in (SCHEMA.query_type, SCHEMA.mutation_type, SCHEMA.subscription_type) if r is not None]
ROOT_FIELDS = [(root.name, name) for root in ROOTS for name in sorted(root.fields)]
CALLERS = ("anonymous", "customer", "admin")

# About a minute for every field and caller on two cores (fields without arguments run out of
# distinct documents sooner). No example database: the examples hold ids that mean nothing to a
# later run. Run with more examples when hunting: a few hundred per field take a few minutes.
BUDGET = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
INVALID_BUDGET = settings(BUDGET, max_examples=8)
# `logout` ends the caller's access token, so each of its examples signs in afresh.
ENDS_THE_SESSION = frozenset({"logout"})

INTERNAL_CODES = frozenset({"INTERNAL", "INTERNAL_SERVER_ERROR"})
# What only the implementation knows: exception text and names, tracebacks, files, SQL, gRPC.
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|site-packages|<class '|<module|object at 0x|"
    r"\bStatusCode\.|RpcError|grpc[._]|debug_error_string|status = StatusCode|"
    r"asyncpg|sqlalchemy|psycopg|SQLSTATE|\bSELECT\b|\bINSERT INTO\b|\bDELETE FROM\b|"
    r"duplicate key|violates \w+ key|violates check constraint|\brelation \"|"
    r"\b\w*(?:Error|Exception)\b|NoneType|\bdecimal\.|ConversionSyntax|InvalidOperation|"
    r"redis\.|aiokafka|protobuf|_pb2",
)

CONTROL_CHARACTERS = "\x00\x01\x1f\x7f\n\t\u200b\u202e\ufeff"
DECIMALS = (
    *("19.99", "0.01", "1", "0", "-1", "0.001", "12.345", "1000000", "1000000.01", "1e2", "1E-7"),
    *("NaN", "-Infinity", "sNaN", "1e999999", "9" * 40, " 1 ", "", "abc", "1,5"),
)

CREATE_WEBHOOK = """
mutation Hook($url: String!, $events: [String!]!) {
  createWebhook(url: $url, events: $events, description: "fuzz") { webhook { id } }
}"""
WEBHOOKS = "query { webhooks { id } }"
DELETE_WEBHOOK = "mutation Unhook($id: ID!) { deleteWebhook(id: $id) { id } }"
PRODUCT_PAGE = "query { products(first: 1) { edges { cursor } } }"


@dataclass
class World:
    """Real accounts and records the generated arguments may name."""

    url: str
    admin: str
    customer: str
    leaving_customer: str  # e-mails of accounts whose sessions `logout` may end
    leaving_admin: str
    order_id: str
    webhooks_before: set[str]
    ids: list[str] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)


# -- what the generated arguments draw from -------------------------------------------------------


def interesting_strings(world: World) -> list[str]:
    return [
        *world.strings,
        "",
        " ",
        "a",
        "A b-c_d.e",
        "x" * 201,
        "y" * 10_001,
        "é" * 37,  # 74 bytes: over the password limit in bytes, not in characters
        "🛒 lamp",
        "\x00",
        "line\nbreak",
        "' OR '1'='1",
        "%",
        "_",
        "\\",
        '"quoted words" -excluded OR lamp',
        "tok_visa",
        "tok_chargeDeclined",
        "tok_timeout",
        "tok_unavailable",
        "USD",
        "EUR",
        "JPY",
        "usd",
        "XXX",
        "DE",
        "order.created",
        "order.confirmed",
        "catalog.stock_low",
        "no.such_event",
        "http://127.0.0.1:9/fuzz",
        "ftp://127.0.0.1/fuzz",
        "bm90IGEgY3Vyc29y",
        str(uuid.uuid4()),
    ]


def scalar_strategies(world: World) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    """Value nodes per scalar; built-in ones too, so that arguments often mean something."""
    # Any character, control characters (NUL, which PostgreSQL refuses in text) more often.
    characters = st.one_of(st.characters(codec="utf-8"), st.sampled_from(CONTROL_CHARACTERS))
    text = st.text(characters, max_size=40)
    strings = st.one_of(text, st.emails(), st.sampled_from(interesting_strings(world)))
    ids = st.one_of(st.sampled_from(world.ids), st.uuids().map(str), text)
    decimals = st.one_of(
        st.sampled_from(DECIMALS),
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        text,
    )
    integers = st.one_of(
        st.integers(-3, 120),
        st.sampled_from([1000, 1001, 10_000, 1_000_000, 2**31 - 1, -(2**31)]),
    )
    return {
        "String": strings.map(nodes.String),
        "ID": st.one_of(ids.map(nodes.String), st.integers(-1, 10**12).map(nodes.Int)),
        "Int": integers.map(nodes.Int),
        "Decimal": st.one_of(
            decimals.map(nodes.String),
            st.integers(-(10**20), 10**20).map(nodes.Int),
            st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
        ),
    }


# -- the properties ---------------------------------------------------------------------------------


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def echoed_values(document: str) -> list[str]:
    """The document's literal values, longest first: messages may quote them back (a bad slug)."""
    values: list[str] = []

    class Literals(graphql.Visitor):
        def enter_string_value(self, node: graphql.StringValueNode, *_: Any) -> None:
            values.extend({node.value, node.value.strip(), repr(node.value)[1:-1]} - {""})

    graphql.visit(graphql.parse(document), Literals())
    return sorted(values, key=len, reverse=True)


def check_answer(response: httpx.Response, document: str | None = None) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body, dict), body
    assert "data" in body or body.get("errors"), body
    echoes = echoed_values(document) if document else []
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert isinstance(code, str), f"an error without a code: {error}"
        assert code not in INTERNAL_CODES, f"an internal error: {body}"
        assert error.get("message") != "internal error", f"an internal error: {body}"
        shown = strings_in({"message": error.get("message"), **(error.get("extensions") or {})})
        leaked = [s for s in shown if LEAKS.search(without(s, echoes))]
        assert not leaked, f"an error shows the implementation: {leaked} in {body}"


def without(text: str, echoes: list[str]) -> str:
    for value in echoes:
        text = re.sub(re.escape(value), " ", text, flags=re.IGNORECASE)
    return text


# -- callers ------------------------------------------------------------------------------------------


def sign_in(client: httpx.Client, url: str, email: str) -> str:
    answer = client.post(url, json={"query": LOGIN, "variables": {"email": email, "password": PASSWORD}})
    body = answer.json()
    assert "errors" not in body, body
    return body["data"]["login"]["accessToken"]


def token_source(
    world: World, caller: str, root_field: str, client: httpx.Client
) -> Callable[[], str | None]:
    """The access token of each example: one per test, or a new sign-in for `logout`."""
    if caller == "anonymous":
        return lambda: None
    if root_field in ENDS_THE_SESSION:
        email = world.leaving_admin if caller == "admin" else world.leaving_customer
        return lambda: sign_in(client, world.url, email)
    token = world.admin if caller == "admin" else world.customer
    return lambda: token


def documents(world: World, root: str, root_field: str) -> st.SearchStrategy[str]:
    scalars = scalar_strategies(world)
    if root == "Mutation":
        return mutations(SCHEMA, fields=[root_field], custom_scalars=scalars)
    if root == "Subscription":
        return queries(
            SUBSCRIPTIONS_AS_QUERIES,
            fields=[root_field],
            custom_scalars=scalars,
            print_ast=lambda document: "subscription " + graphql.print_ast(document),
        )
    return queries(SCHEMA, fields=[root_field], custom_scalars=scalars)


def invalid_documents(root: str, root_field: str, decimals: st.SearchStrategy) -> st.SearchStrategy[str]:
    """Documents with one schema violation each; Decimal is ours, so its values are made here."""
    build = mutations if root == "Mutation" else queries
    schema = SUBSCRIPTIONS_AS_QUERIES if root == "Subscription" else SCHEMA
    printer = (
        (lambda d: "subscription " + graphql.print_ast(d)) if root == "Subscription" else graphql.print_ast
    )
    return build(
        schema,
        fields=[root_field],
        mode=Mode.NEGATIVE,
        custom_scalars={"Decimal": decimals},
        print_ast=printer,
    )


def fuzz(world: World, caller: str, root: str, root_field: str) -> None:
    with httpx.Client(timeout=30) as client:
        token = token_source(world, caller, root_field, client)

        @BUDGET
        @given(document=documents(world, root, root_field))
        def examine(document: str) -> None:
            access = token()
            headers = {"Authorization": f"Bearer {access}"} if access else {}
            check_answer(client.post(world.url, json={"query": document}, headers=headers), document)

        examine()


# -- fixtures -----------------------------------------------------------------------------------------


async def promoted_admin(gateway, root_admin: str) -> str:
    """A second ADMIN account (its e-mail), made by the first one."""
    session = await sign_up(gateway)
    body = await gateway.post(SET_ROLE, {"id": session["account"]["id"], "role": "ADMIN"}, token=root_admin)
    assert "errors" not in body, body
    return session["account"]["email"]


async def build_world(gateway) -> World:
    admin = (await admin_session(gateway))["accessToken"]
    webhooks_before = await webhook_ids(gateway, admin)
    customer = await sign_up(gateway)
    victim_email = unique_email("fuzz-victim")
    victim = await sign_up(gateway, email=victim_email)
    leaving_customer = (await sign_up(gateway))["account"]["email"]
    leaving_admin = await promoted_admin(gateway, admin)

    slug = await new_category(gateway, admin, "Fuzz Goods")
    product = await new_product(gateway, admin, slug, name="Fuzz Lamp", stock=1000)
    placed = await gateway.post(
        CREATE_ORDER, {"input": order_input([(product["id"], 1)])}, token=customer["accessToken"]
    )
    assert "errors" not in placed, placed
    order_id = placed["data"]["createOrder"]["id"]

    async def payment_id() -> str | None:
        body = await gateway.post(ORDER, {"id": order_id}, token=customer["accessToken"])
        payment = body["data"]["order"]["payment"]
        return payment["id"] if payment else None

    hook = await gateway.post(
        CREATE_WEBHOOK, {"url": "http://127.0.0.1:9/fuzz", "events": ["order.created"]}, token=admin
    )
    assert "errors" not in hook, hook
    cursor = (await gateway.post(PRODUCT_PAGE))["data"]["products"]["edges"][0]["cursor"]
    return World(
        url=gateway.url,
        admin=admin,
        customer=customer["accessToken"],
        leaving_customer=leaving_customer,
        leaving_admin=leaving_admin,
        order_id=order_id,
        webhooks_before=webhooks_before,
        ids=[
            product["id"],
            order_id,
            await eventually(payment_id, timeout=60, interval=0.1, what="the fixture order's payment"),
            hook["data"]["createWebhook"]["webhook"]["id"],
            victim["account"]["id"],
        ],
        strings=[
            slug,
            product["sku"],
            victim_email,
            PASSWORD,
            victim["refreshToken"],
            cursor,
            "fuzz-goods-" + uuid.uuid4().hex[:6],
        ],
    )


async def webhook_ids(gateway, admin: str) -> set[str]:
    body = await gateway.post(WEBHOOKS, token=admin)
    assert "errors" not in body, body
    return {w["id"] for w in body["data"]["webhooks"]}


@pytest.fixture(scope="module")
async def world(gateway) -> AsyncIterator[World]:
    """The records to fuzz with; afterwards every webhook made since is deleted, so that no later
    test's events are sent to one."""
    world = await build_world(gateway)
    yield world
    for hook in await webhook_ids(gateway, world.admin) - world.webhooks_before:
        body = await gateway.post(DELETE_WEBHOOK, {"id": hook}, token=world.admin)
        assert "errors" not in body, body


# -- tests --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("root", "root_field"), ROOT_FIELDS, ids=[f"{r}.{f}" for r, f in ROOT_FIELDS])
async def test_any_document_for_a_field_gets_a_coded_answer_that_shows_no_internals(
    world: World, caller: str, root: str, root_field: str
):
    await asyncio.to_thread(fuzz, world, caller, root, root_field)


def refuse_invalid(world: World, root: str, root_field: str) -> None:
    decimals = scalar_strategies(world)["Decimal"]
    with httpx.Client(timeout=30) as client:

        @INVALID_BUDGET
        @given(document=invalid_documents(root, root_field, decimals))
        def examine(document: str) -> None:
            answer = client.post(world.url, json={"query": document})
            check_answer(answer, document)
            body = answer.json()
            assert body.get("data") is None, body
            assert set(codes(body)) == {"GRAPHQL_VALIDATION_FAILED"}, body

        examine()


# Fields without arguments have nothing to violate but their selection, which any field shares.
WITH_ARGUMENTS = [
    (root.name, name) for root in ROOTS for name in sorted(root.fields) if root.fields[name].args
]


@pytest.mark.parametrize(("root", "root_field"), WITH_ARGUMENTS, ids=[f"{r}.{f}" for r, f in WITH_ARGUMENTS])
async def test_a_document_that_breaks_the_schema_is_refused_before_it_runs(
    world: World, root: str, root_field: str
):
    await asyncio.to_thread(refuse_invalid, world, root, root_field)


# -- what the fuzzing found, kept as exact cases -------------------------------------------------------

SUBSCRIBE = "subscription Watch($id: ID!) { orderStatusChanged(orderId: $id) { id status } }"


@pytest.mark.parametrize("caller", CALLERS)
async def test_a_subscription_over_http_is_bad_request_not_an_internal_error(
    gateway, world: World, caller: str
):
    token = {"anonymous": None, "customer": world.customer, "admin": world.admin}[caller]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    variables = {"id": world.order_id}

    post = await gateway.client.post(
        gateway.url, json={"query": SUBSCRIBE, "variables": variables}, headers=headers
    )
    get = await gateway.client.get(
        gateway.url, params={"query": SUBSCRIBE, "variables": json.dumps(variables)}, headers=headers
    )

    for answer in (post, get):
        check_answer(answer)
        assert answer.json()["data"] is None
        assert codes(answer.json()) == ["BAD_REQUEST"]


async def test_a_nul_in_the_login_email_is_the_usual_wrong_credentials(gateway):
    body = await gateway.post(LOGIN, {"email": unique_email() + "\x00", "password": PASSWORD})

    assert codes(body) == ["UNAUTHENTICATED"], body


@pytest.mark.parametrize(
    ("document", "variables", "field"),
    [
        (PRODUCTS, {"filter": {"categorySlug": "lamps\x00"}}, "filter.categorySlug"),
        (SEARCH, {"query": "lamp", "filter": {"categorySlug": "\x00"}}, "filter.categorySlug"),
        (PRODUCTS, {"filter": {"categorySlug": "Not A Slug"}}, "filter.categorySlug"),
    ],
    ids=["listing", "search", "not-a-slug"],
)
async def test_a_slug_no_category_can_have_is_bad_input_naming_the_argument(
    gateway, document, variables, field
):
    body = await gateway.post(document, variables)

    assert codes(body) == ["BAD_USER_INPUT"], body
    assert first_error(body)["extensions"]["field"] == field


async def test_a_new_product_in_a_slug_no_category_can_have_is_bad_input_naming_it(gateway, world: World):
    body = await gateway.post(CREATE_PRODUCT, {"input": product_input("x\x00y")}, token=world.admin)

    assert codes(body) == ["BAD_USER_INPUT"], body
    assert first_error(body)["extensions"]["field"] == "categorySlug"
