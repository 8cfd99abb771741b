"""What errors tell the caller: bad input is named, not masked; production mode refuses introspection and
never suggests names."""

from __future__ import annotations

import pytest

from tests.e2e.gateway_protection.gateways import TYPENAME, only_code
from tests.e2e.test_account_graphql import codes

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
