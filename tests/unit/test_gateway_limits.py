"""Document limits, error codes and production error hygiene of the real schema, without servers."""

from __future__ import annotations

import pytest
from graphql import parse

from gateway.guard import Refused, check_csrf
from gateway.limits import operation_aliases, operation_depth
from gateway.schema import create_schema
from gateway.settings import GatewaySettings

DEPTH_7 = "query { myOrders { edges { node { items { product { category { name } } } } } } }"
DEPTH_7_THROUGH_FRAGMENTS = """
query { myOrders { edges { ...Node } } }
fragment Node on OrderEdge { node { ...Items } }
fragment Items on Order { items { product { category { name } } } }"""
TYPO_DOCUMENTS = [
    ("query { mee { id } }", None),
    ("query { accounts(frist: 2) { totalCount } }", None),
    ("query($r: Rol) { me { id } }", None),
    ('mutation { setAccountRole(accountId: "x", role: ADMN) { id } }', None),
    ('mutation { register(input: {nme: "a", email: "b", password: "c"}) { accessToken } }', None),
    ('mutation($r: Role!) { setAccountRole(accountId: "x", role: $r) { id } }', {"r": "ADMN"}),
    ("query { me { ...F } } fragment F on Acount { id }", None),
]


def codes(result) -> list[str]:
    return [e.extensions["code"] for e in result.errors or []]


def first_operation(document: str):
    parsed = parse(document)
    return parsed, parsed.definitions[0]


def test_depth_counts_levels_of_fields_and_fragments_add_none():
    assert operation_depth(*first_operation("{ me { id } }")) == 2
    assert operation_depth(*first_operation(DEPTH_7)) == 7
    assert operation_depth(*first_operation(DEPTH_7_THROUGH_FRAGMENTS)) == 7
    assert operation_depth(*first_operation("{ __schema { types { fields { type { name } } } } }")) == 0


def test_aliases_inside_a_fragment_count_at_every_spread():
    document = """
    query { ...Two first: me { ...Two } }
    fragment Two on Query { a: rateLimit { cost } b: rateLimit { cost } }"""

    assert operation_aliases(*first_operation(document)) == 5


def test_fragments_that_spread_each_other_twice_are_counted_without_walking_every_path():
    levels = 300
    fragments = "\n".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    document = f"query {{ ...F0 }}\n{fragments}\nfragment F{levels} on Query {{ a: me {{ id }} }}"

    assert operation_aliases(*first_operation(document)) == 2**levels


def test_a_cycle_of_fragments_is_left_to_validation_to_refuse():
    document = "query { ...A } fragment A on Query { a: me { id } ...B } fragment B on Query { ...A }"

    assert operation_aliases(*first_operation(document)) == 1


async def test_depth_limit_refuses_one_level_more_with_a_code():
    schema = create_schema(GatewaySettings(env="development", max_depth=6))

    over = await schema.execute(DEPTH_7_THROUGH_FRAGMENTS)
    under = await schema.execute("query { myOrders { edges { node { items { product { name } } } } } }")

    assert codes(over) == ["QUERY_TOO_DEEP"]
    assert over.errors[0].extensions["depth"] == 7
    assert "QUERY_TOO_DEEP" not in codes(under)


async def test_directives_beyond_the_limit_are_refused_with_a_code():
    schema = create_schema(GatewaySettings(env="development", max_directives_per_field=1))

    result = await schema.execute("query { rateLimit @include(if: true) @skip(if: false) { cost } }")

    assert codes(result) == ["TOO_MANY_DIRECTIVES"]


async def test_a_query_over_the_cost_limit_is_refused_before_any_resolver_runs():
    schema = create_schema(GatewaySettings(env="development", max_query_cost=21))

    over = await schema.execute("query { products(first: 9) { edges { node { id } } } }")

    assert over.data is None
    assert codes(over) == ["QUERY_TOO_COMPLEX"]
    assert (over.errors[0].extensions["cost"], over.errors[0].extensions["maximumCost"]) == (22, 21)
    assert over.extensions["cost"] == {"requestedQueryCost": 22, "actualQueryCost": 0, "throttleStatus": None}


async def test_an_unexpected_error_is_masked_and_coded_internal():
    schema = create_schema(GatewaySettings(env="development"))

    result = await schema.execute("query { me { id } }", context_value=object())

    assert [e.message for e in result.errors] == ["internal error"]
    assert codes(result) == ["INTERNAL"]


@pytest.mark.parametrize(("document", "variables"), TYPO_DOCUMENTS)
async def test_production_errors_carry_a_code_and_never_suggest_names(document, variables):
    production = create_schema(GatewaySettings(env="production"))
    development = create_schema(GatewaySettings(env="development"))

    refused = await production.execute(document, variable_values=variables)
    helped = await development.execute(document, variable_values=variables)

    assert refused.errors
    assert not any("Did you mean" in e.message for e in refused.errors)
    assert set(codes(refused)) <= {"GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT"}
    assert any("Did you mean" in e.message for e in helped.errors)


async def test_parse_and_token_errors_have_codes_of_their_own():
    schema = create_schema(GatewaySettings(env="development", max_tokens=10))

    broken = await schema.execute("query { me { id }")
    long = await schema.execute("query { me { id name email role createdAt } }")

    assert codes(broken) == ["GRAPHQL_PARSE_FAILED"]
    assert codes(long) == ["TOO_MANY_TOKENS"]


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "multipart/form-data; boundary=x"},
        {},
        {"content-type": "text/plain", "x-requested-with": ""},
    ],
)
def test_a_post_a_browser_could_send_cross_site_is_refused(headers):
    with pytest.raises(Refused) as refused:
        check_csrf(headers)

    assert (refused.value.status, refused.value.code) == (400, "CSRF_CHECK_FAILED")


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "application/json"},
        {"content-type": "application/json; charset=utf-8"},
        {"content-type": "text/plain", "x-requested-with": "XMLHttpRequest"},
        {"content-type": "text/plain", "apollo-require-preflight": "true"},
        {"content-type": "multipart/form-data", "x-apollo-operation-name": "Upload"},
    ],
)
def test_a_post_that_needs_a_preflight_passes_the_csrf_check(headers):
    check_csrf(headers)
