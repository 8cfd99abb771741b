"""Query cost over HTTP: every answer reports its cost and the caller's budget; a query over the limit
is refused before it runs."""

from __future__ import annotations

from datetime import datetime

from tests.e2e.gateway_protection.gateways import RATE_LIMIT, cost_of, only_code
from tests.e2e.test_catalog_graphql import new_category, new_product

# Two connections of 98: (2 + 98) * (edges + node + price + category + pageInfo) * 2 = 1000.
COST_1000 = """
query AtTheLimit {
  cheap: products(first: 98, sort: PRICE_ASC) { pageInfo { hasNextPage } edges { node { id price { amount } category { slug } } } }
  dear: products(first: 98, sort: PRICE_DESC) { pageInfo { hasNextPage } edges { node { id price { amount } category { slug } } } }
}"""
COST_1001 = COST_1000.replace("query AtTheLimit {", "query OverTheLimit {\n  rateLimit { cost }")


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
