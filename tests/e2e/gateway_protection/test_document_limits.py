"""Document limits: depth, aliases (inside fragments too), tokens, directives and size, each run at the
limit and refused one past it."""

from __future__ import annotations

from tests.e2e.gateway_protection.gateways import only_code
from tests.e2e.test_account_graphql import codes

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


DEPTH_5 = "query { products(first: 1) { edges { node { category { name } } } } }"
DEPTH_6 = """
query { myOrders(first: 1) { edges { node { ...Lines } } } }
fragment Lines on Order { items { product { name } } }"""


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
