"""The response cache through GraphQL: public catalog reads are answered from it and charged as
executed ones, changes made anywhere are visible within the promised bounds (content within a
second, stock within two) while the other answers stay cached, nothing personal is ever served
from it, and HTTP caches get the headers they need.

Changes of the content are made through another gateway instance (`lenient`) than the one read
(`shared`): the reader learns of them only from the catalog's change feed, as one replica does of
another's writes. Stock changes come from orders, through the saga, as in a shop.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.e2e.gateway_protection.gateways import Gateways, cost_of, only_code, sha256
from tests.e2e.test_account_graphql import sign_up
from tests.e2e.test_catalog_graphql import (
    DELETE_PRODUCT,
    UPDATE_PRODUCT,
    new_category,
    new_product,
)
from tests.e2e.test_order_saga import place_and_wait
from tests.helpers import eventually

# The promises, and the margin a probe's own requests take.
CONTENT_BOUND, STOCK_BOUND, MARGIN = 1.0, 2.0, 0.5

PRODUCT = "query CachedProduct($id: ID!) { product(id: $id) { id name description price { amount } stock inStock archived } }"
LISTING = """
query CachedListing($slug: String!, $inStock: Boolean) {
  products(first: 20, filter: {categorySlug: $slug, inStock: $inStock}) { totalCount edges { node { id name inStock } } }
}"""
SEARCH = (
    "query CachedSearch($q: String!) { searchProducts(query: $q) { totalCount edges { node { id name } } } }"
)
MIXED = "query Mixed { me { id } categories { slug } }"
ARCHIVED = "query Archived($slug: String!) { products(filter: {categorySlug: $slug, includeArchived: true}) { totalCount } }"
HITS = re.compile(r'^ecommerce_cache_hits_total\{cache="responses"\} ([0-9.e+]+)$', re.MULTILINE)


async def hits(platform) -> float:
    """Answers the session's gateway gave from its response cache so far."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{platform.metrics_ports['gateway']}/metrics")).text
    found = HITS.search(text)
    return float(found.group(1)) if found else 0.0


async def read(gateways: Gateways, query: str, variables: dict, **kwargs) -> dict:
    body = await gateways.shared.post(query, variables, **kwargs)
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture(scope="module")
async def shop(gateways, admin) -> dict:
    slug = await new_category(gateways.shared, admin, name="Cached")
    return {"slug": slug, "admin": admin, "customer": (await sign_up(gateways.shared))["accessToken"]}


async def test_a_repeated_read_is_answered_from_the_cache_with_the_same_data_and_cost(
    gateways, shop, platform
):
    lamp = await new_product(gateways.shared, shop["admin"], shop["slug"], name="Cache Lamp")
    executed = await gateways.shared.post(PRODUCT, {"id": lamp["id"]})
    before = await hits(platform)

    cached = await gateways.shared.post(PRODUCT, {"id": lamp["id"]})
    signed_in = await gateways.shared.post(PRODUCT, {"id": lamp["id"]}, token=shop["customer"])

    assert await hits(platform) == before + 2
    assert cached["data"] == signed_in["data"] == executed["data"]
    requested, actual = cost_of(executed)["requestedQueryCost"], cost_of(executed)["actualQueryCost"]
    assert (cost_of(cached)["requestedQueryCost"], cost_of(cached)["actualQueryCost"]) == (requested, actual)
    assert cost_of(signed_in)["throttleStatus"]["currentlyAvailable"] is not None


async def test_content_changed_on_another_instance_is_visible_here_within_a_second(gateways, shop):
    slug, admin = await new_category(gateways.shared, shop["admin"]), shop["admin"]
    lamp = await new_product(gateways.shared, admin, slug, name="Quartz Lamp", price="10.00")
    readings = [(PRODUCT, {"id": lamp["id"]}), (LISTING, {"slug": slug}), (SEARCH, {"q": "Quartz"})]
    for query, variables in readings * 2:  # the second round is answered from the cache
        await read(gateways, query, variables)

    changed = await gateways.lenient.post(
        UPDATE_PRODUCT,
        {"id": lamp["id"], "input": {"name": "Quartz Lantern", "description": "Brighter.", "price": "12.00"}},
        token=admin,
    )
    assert "errors" not in changed, changed

    async def changed_everywhere() -> bool:
        product = (await read(gateways, *readings[0]))["product"]
        listed = (await read(gateways, *readings[1]))["products"]["edges"]
        found = (await read(gateways, *readings[2]))["searchProducts"]["edges"]
        return (
            (product["name"], product["description"], product["price"]["amount"])
            == ("Quartz Lantern", "Brighter.", "12.00")
            and [e["node"]["name"] for e in listed] == ["Quartz Lantern"]
            and [e["node"]["name"] for e in found] == ["Quartz Lantern"]
        )

    await eventually(changed_everywhere, timeout=CONTENT_BOUND + MARGIN, interval=0.05, what="the change")

    vase = await new_product(gateways.lenient, admin, slug, name="Quartz Vase")

    async def listed_new() -> bool:
        return (await read(gateways, *readings[1]))["products"]["totalCount"] == 2

    await eventually(listed_new, timeout=CONTENT_BOUND + MARGIN, interval=0.05, what="the new product")

    archived = await gateways.lenient.post(DELETE_PRODUCT, {"id": vase["id"]}, token=admin)
    assert "errors" not in archived, archived

    async def gone() -> bool:
        listed = (await read(gateways, *readings[1]))["products"]
        product = (await read(gateways, PRODUCT, {"id": vase["id"]}))["product"]
        return listed["totalCount"] == 1 and product["archived"]

    await eventually(gone, timeout=CONTENT_BOUND + MARGIN, interval=0.05, what="the archived product to go")


async def test_an_order_changes_the_stock_shown_within_two_seconds_and_other_answers_stay_cached(
    gateways, shop, platform
):
    lamp = await new_product(gateways.shared, shop["admin"], shop["slug"], name="Stock Lamp", stock=5)
    vase = await new_product(gateways.shared, shop["admin"], shop["slug"], name="Stock Vase", stock=5)
    for product in (lamp, vase, lamp, vase):
        await read(gateways, PRODUCT, {"id": product["id"]})

    order = await place_and_wait(
        gateways.shared, shop["customer"], [(lamp["id"], 2)], payment="tok_visa", wait=10
    )
    assert order["data"]["createOrder"]["status"] == "CONFIRMED", order

    async def sold() -> bool:
        return (await read(gateways, PRODUCT, {"id": lamp["id"]}))["product"]["stock"] == 3

    await eventually(sold, timeout=STOCK_BOUND + MARGIN, interval=0.05, what="the stock after the order")
    before = await hits(platform)
    unchanged = await read(gateways, PRODUCT, {"id": vase["id"]})
    assert unchanged["product"]["stock"] == 5
    assert await hits(platform) == before + 1  # the order did not empty the cache


async def test_a_product_that_sells_out_leaves_in_stock_listings_within_two_seconds(gateways, shop):
    slug = await new_category(gateways.shared, shop["admin"])
    last = await new_product(gateways.shared, shop["admin"], slug, name="Last One", stock=1)
    await new_product(gateways.shared, shop["admin"], slug, name="Plenty", stock=50)
    for _ in range(2):
        await read(gateways, LISTING, {"slug": slug, "inStock": True})

    order = await place_and_wait(
        gateways.shared, shop["customer"], [(last["id"], 1)], payment="tok_visa", wait=10
    )
    assert order["data"]["createOrder"]["status"] == "CONFIRMED", order

    async def left() -> bool:
        listed = (await read(gateways, LISTING, {"slug": slug, "inStock": True}))["products"]
        return [e["node"]["name"] for e in listed["edges"]] == ["Plenty"] and listed["totalCount"] == 1

    await eventually(left, timeout=STOCK_BOUND + MARGIN, interval=0.05, what="the sold-out product to leave")


async def test_personal_answers_errors_and_admin_listings_are_never_served_from_the_cache(
    gateways, shop, platform
):
    me = (await sign_up(gateways.shared))["accessToken"]
    before = await hits(platform)

    mine = [await gateways.shared.post(MIXED, token=me) for _ in range(2)]
    theirs = await gateways.shared.post(MIXED, token=shop["customer"])
    errors = [await gateways.shared.post(PRODUCT, {"id": "' OR 1=1 --"}) for _ in range(2)]
    as_admin = [
        await gateways.shared.post(ARCHIVED, {"slug": shop["slug"]}, token=shop["admin"]) for _ in range(2)
    ]
    as_customer = await gateways.shared.post(ARCHIVED, {"slug": shop["slug"]}, token=shop["customer"])
    as_visitor = await gateways.shared.post(ARCHIVED, {"slug": shop["slug"]})

    assert await hits(platform) == before
    assert mine[0]["data"]["me"] == mine[1]["data"]["me"] != theirs["data"]["me"]
    assert [only_code(e) for e in errors] == ["BAD_USER_INPUT"] * 2
    assert all("errors" not in a for a in as_admin)
    assert only_code(as_customer) == only_code(as_visitor) == "FORBIDDEN"


THRESHOLD = "query Threshold($id: ID!) { product(id: $id) { id lowStockThreshold } }"


async def test_an_answer_with_an_admin_only_field_is_never_served_from_the_cache(gateways, shop, platform):
    lamp = await new_product(
        gateways.shared, shop["admin"], shop["slug"], name="Threshold Lamp", lowStockThreshold=3
    )
    before = await hits(platform)

    as_admin = [
        await gateways.shared.post(THRESHOLD, {"id": lamp["id"]}, token=shop["admin"]) for _ in range(2)
    ]
    as_visitor = await gateways.shared.post(THRESHOLD, {"id": lamp["id"]})

    assert await hits(platform) == before
    assert [a["data"]["product"]["lowStockThreshold"] for a in as_admin] == [3, 3]
    assert as_visitor["data"]["product"]["lowStockThreshold"] is None


async def test_cached_answers_are_charged_to_the_callers_budget(gateways):
    query = "query ChargedListing { products(first: 40) { totalCount } }"
    first = await gateways.strict.post(query, address="127.0.0.17")
    requested, actual = cost_of(first)["requestedQueryCost"], cost_of(first)["actualQueryCost"]

    answers = []
    for _ in range(40):
        body = await gateways.strict.post(query, address="127.0.0.17")
        answers.append(body)
        if body.get("errors"):
            break

    assert only_code(answers[-1]) == "RATE_LIMITED"  # cached or not, every answer was paid for
    assert all(
        (cost_of(a)["requestedQueryCost"], cost_of(a)["actualQueryCost"]) == (requested, actual)
        for a in answers[:-1]
    )


# -- HTTP caching ----------------------------------------------------------------------------------------


async def test_a_persisted_catalog_read_over_get_may_be_cached_by_browsers_and_cdns(gateways, shop):
    lamp = await new_product(gateways.shared, shop["admin"], shop["slug"], name="Get Lamp")
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": sha256(PRODUCT)}}
    registered = await gateways.shared.post(PRODUCT, {"id": lamp["id"]}, extensions=persisted)
    params = {"extensions": json.dumps(persisted), "variables": json.dumps({"id": lamp["id"]})}
    async with httpx.AsyncClient(timeout=30) as client:
        got = await client.get(gateways.shared.url, params=params)
        again = await client.get(
            gateways.shared.url, params=params, headers={"If-None-Match": got.headers["etag"]}
        )
        private = await client.get(
            gateways.shared.url, params=params, headers={"Authorization": f"Bearer {shop['customer']}"}
        )
        posted = await client.post(
            gateways.shared.url, json={"query": PRODUCT, "variables": {"id": lamp["id"]}}
        )
        mutation = await client.post(
            gateways.shared.url,
            json={"query": UPDATE_PRODUCT, "variables": {"id": lamp["id"], "input": {"name": "Get Lantern"}}},
            headers={"Authorization": f"Bearer {shop['admin']}"},
        )
        anonymous_mutation = await client.post(
            gateways.shared.url, json={"query": DELETE_PRODUCT, "variables": {"id": lamp["id"]}}
        )
        await eventually(
            lambda: _changed(client, gateways.shared.url, params, got.headers["etag"]),
            timeout=CONTENT_BOUND + MARGIN,
            interval=0.05,
            what="a new tag for the changed product",
        )

    assert got.status_code == 200
    assert got.json()["data"] == registered["data"]
    assert got.headers["cache-control"] == "public, max-age=1, stale-while-revalidate=5"
    assert got.headers["etag"].startswith('W/"')
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", got.headers["etag"])
    assert (private.status_code, private.headers["cache-control"]) == (200, "private, no-store")
    assert "etag" not in private.headers
    assert (posted.headers["cache-control"], "etag" in posted.headers) == ("no-store", False)
    assert mutation.headers["cache-control"] == "private, no-store"
    assert anonymous_mutation.headers["cache-control"] == "no-store"
    assert only_code(anonymous_mutation.json()) == "UNAUTHENTICATED"


async def _changed(client: httpx.AsyncClient, url: str, params: dict, old_tag: str) -> bool:
    answer = await client.get(url, params=params, headers={"If-None-Match": old_tag})
    return answer.status_code == 200 and answer.json()["data"]["product"]["name"] == "Get Lantern"
