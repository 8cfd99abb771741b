"""Every catalog operation through HTTP GraphQL, with hostile input and callers who may not."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path

import pytest

from tests.e2e.test_account_graphql import admin_session, codes, first_error, sign_up
from tests.helpers import eventually

CREATE_CATEGORY = """
mutation CreateCategory($name: String!, $slug: String) {
  createCategory(name: $name, slug: $slug) { id slug name productCount }
}"""
CREATE_PRODUCT = """
mutation CreateProduct($input: CreateProductInput!) {
  createProduct(input: $input) {
    id sku name description price { amount currency } category { slug name } stock inStock featured archived
    createdAt updatedAt
  }
}"""
UPDATE_PRODUCT = """
mutation UpdateProduct($id: ID!, $input: UpdateProductInput!) {
  updateProduct(id: $id, input: $input) { id sku name description price { amount currency } category { slug } featured }
}"""
DELETE_PRODUCT = "mutation DeleteProduct($id: ID!) { deleteProduct(id: $id) }"
ADJUST_STOCK = """
mutation AdjustStock($id: ID!, $delta: Int!, $reason: String) {
  adjustStock(productId: $id, delta: $delta, reason: $reason) { id stock inStock }
}"""
PRODUCT = """
query Product($id: ID!) {
  product(id: $id) { id name price { amount currency } stock inStock archived category { slug productCount } }
}"""
PRODUCTS = """
query Products($first: Int, $after: String, $filter: ProductFilter, $sort: ProductSort) {
  products(first: $first, after: $after, filter: $filter, sort: $sort) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name price { amount } stock featured } }
  }
}"""
SEARCH = """
query Search($query: String!, $first: Int, $after: String, $filter: ProductFilter, $sort: ProductSort) {
  searchProducts(query: $query, first: $first, after: $after, filter: $filter, sort: $sort) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name } }
  }
}"""
CATEGORIES = "query { categories { id slug name productCount } }"
VARIANT_PRODUCT = """
query VariantProduct($id: ID!) {
  product(id: $id) {
    id stock variants { id sku name options { group value } price { amount } stock inStock }
    images { url alt position } featuredImage { url } priceRange { min { amount } max { amount } }
  }
}"""
CREATE_VARIANT_PRODUCT = """
mutation CreateVariantProduct($input: CreateProductInput!) { createProduct(input: $input) { id } }"""
CREATE_ORDER = """
mutation CreateOrder($input: CreateOrderInput!) { createOrder(input: $input, waitSeconds: 10) { id status } }"""
THREE_PRODUCTS = """
query Three($a: ID!, $b: ID!, $c: ID!) {
  a: product(id: $a) { name category { productCount } }
  b: product(id: $b) { name }
  again: product(id: $a) { stock }
  c: product(id: $c) { name }
}"""


@pytest.fixture(scope="module")
async def admin(gateway) -> str:
    return (await admin_session(gateway))["accessToken"]


@pytest.fixture(scope="module")
async def customer(gateway) -> str:
    return (await sign_up(gateway))["accessToken"]


def unique_slug(prefix: str = "cat") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def product_input(category_slug: str, **overrides) -> dict:
    values = {
        "sku": f"E2E-{uuid.uuid4().hex[:10]}",
        "name": "Desk Lamp",
        "description": "A warm LED lamp.",
        "price": "49.99",
        "currency": "USD",
        "categorySlug": category_slug,
        "stock": 10,
        "featured": False,
    }
    values.update(overrides)
    return values


async def new_category(gateway, admin: str, name: str = "Lighting") -> str:
    body = await gateway.post(CREATE_CATEGORY, {"name": name, "slug": unique_slug()}, token=admin)
    assert "errors" not in body, body
    return body["data"]["createCategory"]["slug"]


async def new_product(gateway, admin: str, category_slug: str, **overrides) -> dict:
    body = await gateway.post(
        CREATE_PRODUCT, {"input": product_input(category_slug, **overrides)}, token=admin
    )
    assert "errors" not in body, body
    return body["data"]["createProduct"]


async def listed(gateway, category_slug: str, **variables) -> dict:
    body = await gateway.post(PRODUCTS, {"filter": {"categorySlug": category_slug}, **variables})
    assert "errors" not in body, body
    return body["data"]["products"]


# -- the shop as admins and shoppers use it ---------------------------------------------------------


async def test_an_admin_stocks_a_category_and_a_shopper_browses_it(gateway, admin, customer):
    slug = await new_category(gateway, admin, "Lighting")
    lamp = await new_product(gateway, admin, slug, name="Desk Lamp", price="49.99", featured=True)
    await new_product(gateway, admin, slug, name="Floor Lamp", price="129.00", stock=0)

    one = await gateway.post(PRODUCT, {"id": lamp["id"]}, token=customer)
    by_price = await listed(gateway, slug, sort="PRICE_DESC")
    in_stock = await listed(gateway, slug, filter={"categorySlug": slug, "inStock": True})
    cheap = await listed(gateway, slug, filter={"categorySlug": slug, "maxPrice": "50"})
    featured = await listed(gateway, slug, filter={"categorySlug": slug, "featured": True})
    categories = await gateway.post(CATEGORIES)

    assert lamp["price"] == {"amount": "49.99", "currency": "USD"}
    assert (lamp["stock"], lamp["inStock"], lamp["archived"], lamp["category"]["name"]) == (
        10,
        True,
        False,
        "Lighting",
    )
    assert lamp["sku"].startswith("E2E-")
    assert one["data"]["product"]["category"] == {"slug": slug, "productCount": 2}
    assert [e["node"]["name"] for e in by_price["edges"]] == ["Floor Lamp", "Desk Lamp"]
    assert by_price["totalCount"] == 2
    assert [e["node"]["name"] for e in in_stock["edges"]] == ["Desk Lamp"]
    assert [e["node"]["name"] for e in cheap["edges"]] == ["Desk Lamp"]
    assert [e["node"]["name"] for e in featured["edges"]] == ["Desk Lamp"]
    mine = [c for c in categories["data"]["categories"] if c["slug"] == slug]
    assert [(c["name"], c["productCount"]) for c in mine] == [("Lighting", 2)]


async def test_pages_follow_their_cursors_to_the_end(gateway, admin):
    slug = await new_category(gateway, admin)
    for i in range(5):
        await new_product(gateway, admin, slug, name=f"Lamp {i}", price=f"{10 + i}.00")

    names, after = [], None
    while True:
        page = await listed(gateway, slug, first=2, after=after, sort="PRICE_ASC")
        names.extend(e["node"]["name"] for e in page["edges"])
        assert page["totalCount"] == 5
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]

    assert names == [f"Lamp {i}" for i in range(5)]


async def test_search_finds_stems_prefixes_and_typos_and_ranks_names_first(gateway, admin):
    slug = await new_category(gateway, admin, "Audio")
    tag = uuid.uuid4().hex[:6]
    await new_product(gateway, admin, slug, name=f"Wireless Headphones {tag}", price="199.00")
    await new_product(
        gateway, admin, slug, name=f"Speaker {tag}", description="Sounds great with headphones."
    )

    async def search(query: str, **extra) -> list[str]:
        body = await gateway.post(SEARCH, {"query": query, "filter": {"categorySlug": slug}, **extra})
        assert "errors" not in body, body
        return [e["node"]["name"] for e in body["data"]["searchProducts"]["edges"]]

    assert await search("headphone") == [f"Wireless Headphones {tag}", f"Speaker {tag}"]
    assert (await search("headph"))[0] == f"Wireless Headphones {tag}"
    assert (await search("hedphones"))[0] == f"Wireless Headphones {tag}"
    assert await search("headphones", filter={"categorySlug": slug, "maxPrice": "100"}) == [f"Speaker {tag}"]
    assert await search("headphones", sort="PRICE_ASC") == [f"Speaker {tag}", f"Wireless Headphones {tag}"]


async def test_an_update_is_visible_on_the_next_read(gateway, admin):
    slug = await new_category(gateway, admin)
    other = await new_category(gateway, admin, "Office")
    lamp = await new_product(gateway, admin, slug, price="49.99")
    await gateway.post(PRODUCT, {"id": lamp["id"]})  # cached now

    updated = await gateway.post(
        UPDATE_PRODUCT,
        {"id": lamp["id"], "input": {"price": "59.50", "name": "Desk Lamp Pro", "categorySlug": other}},
        token=admin,
    )
    currency_only = await gateway.post(
        UPDATE_PRODUCT, {"id": lamp["id"], "input": {"currency": "EUR"}}, token=admin
    )
    read = await gateway.post(PRODUCT, {"id": lamp["id"]})

    assert updated["data"]["updateProduct"]["price"] == {"amount": "59.50", "currency": "USD"}
    assert updated["data"]["updateProduct"]["category"] == {"slug": other}
    assert currency_only["data"]["updateProduct"]["price"] == {"amount": "59.50", "currency": "EUR"}
    assert read["data"]["product"]["name"] == "Desk Lamp Pro"
    assert read["data"]["product"]["price"] == {"amount": "59.50", "currency": "EUR"}


async def test_delete_archives_the_product_out_of_listings_and_is_idempotent(gateway, admin, customer):
    slug = await new_category(gateway, admin)
    lamp = await new_product(gateway, admin, slug)

    deleted = await gateway.post(DELETE_PRODUCT, {"id": lamp["id"]}, token=admin)
    again = await gateway.post(DELETE_PRODUCT, {"id": lamp["id"]}, token=admin)
    read = await gateway.post(PRODUCT, {"id": lamp["id"]})
    listing = await listed(gateway, slug)
    with_archived = await gateway.post(
        PRODUCTS, {"filter": {"categorySlug": slug, "includeArchived": True}}, token=admin
    )
    as_customer = await gateway.post(
        PRODUCTS, {"filter": {"categorySlug": slug, "includeArchived": True}}, token=customer
    )
    update = await gateway.post(UPDATE_PRODUCT, {"id": lamp["id"], "input": {"name": "Back"}}, token=admin)

    assert deleted["data"]["deleteProduct"] is True
    assert again["data"]["deleteProduct"] is True
    assert read["data"]["product"]["archived"] is True
    assert listing["totalCount"] == 0
    assert with_archived["data"]["products"]["totalCount"] == 1
    assert codes(as_customer) == ["FORBIDDEN"]
    assert codes(update) == ["CONFLICT"]


async def test_adjust_stock_never_goes_below_zero(gateway, admin):
    slug = await new_category(gateway, admin)
    lamp = await new_product(gateway, admin, slug, stock=3)

    added = await gateway.post(
        ADJUST_STOCK, {"id": lamp["id"], "delta": 4, "reason": "delivery"}, token=admin
    )
    emptied = await gateway.post(ADJUST_STOCK, {"id": lamp["id"], "delta": -7}, token=admin)
    below = await gateway.post(ADJUST_STOCK, {"id": lamp["id"], "delta": -1}, token=admin)
    zero = await gateway.post(ADJUST_STOCK, {"id": lamp["id"], "delta": 0}, token=admin)
    unknown = await gateway.post(ADJUST_STOCK, {"id": str(uuid.uuid4()), "delta": 1}, token=admin)
    malformed = await gateway.post(ADJUST_STOCK, {"id": "lamp", "delta": 1}, token=admin)
    read = await gateway.post(PRODUCT, {"id": lamp["id"]})

    assert added["data"]["adjustStock"]["stock"] == 7
    assert emptied["data"]["adjustStock"] == {"id": lamp["id"], "stock": 0, "inStock": False}
    assert codes(below) == codes(zero) == ["BAD_USER_INPUT"]
    assert first_error(below)["extensions"]["field"] == first_error(zero)["extensions"]["field"] == "delta"
    assert codes(unknown) == ["NOT_FOUND"]
    assert codes(malformed) == ["BAD_USER_INPUT"]
    assert first_error(malformed)["extensions"]["field"] == "productId"
    assert read["data"]["product"]["stock"] == 0


async def test_product_lookup_by_a_malformed_or_unknown_id(gateway):
    malformed = await gateway.post(PRODUCT, {"id": "' OR 1=1 --"})
    unknown = await gateway.post(PRODUCT, {"id": str(uuid.uuid4())})

    assert codes(malformed) == ["BAD_USER_INPUT"]
    assert first_error(malformed)["extensions"]["field"] == "id"
    assert unknown["data"]["product"] is None
    assert "errors" not in unknown


# -- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"price": "0"}, "BAD_USER_INPUT", "price"),
        ({"price": "-5.00"}, "BAD_USER_INPUT", "price"),
        ({"price": "1000000.01"}, "BAD_USER_INPUT", "price"),
        ({"price": "1e40"}, "BAD_USER_INPUT", "price"),
        ({"price": "9.999"}, "BAD_USER_INPUT", "price"),
        ({"currency": "ABC"}, "BAD_USER_INPUT", "currency"),
        ({"currency": "DOLLARS"}, "BAD_USER_INPUT", "currency"),
        ({"name": "n" * 201}, "BAD_USER_INPUT", "name"),
        ({"name": "x" * 1_000_000}, "BAD_USER_INPUT", "name"),
        ({"name": "<script>\u0007</script>"}, "BAD_USER_INPUT", "name"),
        ({"description": "d" * 10_001}, "BAD_USER_INPUT", "description"),
        ({"stock": -1}, "BAD_USER_INPUT", "stock"),
        ({"sku": "has spaces"}, "BAD_USER_INPUT", "sku"),
        ({"categorySlug": "no-such-category"}, "BAD_USER_INPUT", "categorySlug"),
    ],
)
async def test_create_product_refuses_bad_input_naming_the_field_and_writes_nothing(
    gateway, admin, overrides, code, field
):
    slug = await new_category(gateway, admin)

    body = await gateway.post(CREATE_PRODUCT, {"input": product_input(slug, **overrides)}, token=admin)

    assert codes(body) == [code]
    assert first_error(body)["extensions"]["field"] == field
    assert (await listed(gateway, slug))["totalCount"] == 0


async def test_a_duplicate_sku_is_conflict_naming_the_sku(gateway, admin):
    slug = await new_category(gateway, admin)
    lamp = await new_product(gateway, admin, slug)

    body = await gateway.post(
        CREATE_PRODUCT, {"input": product_input(slug, sku=lamp["sku"].lower())}, token=admin
    )

    assert codes(body) == ["CONFLICT"]
    assert first_error(body)["extensions"]["field"] == "sku"
    assert (await listed(gateway, slug))["totalCount"] == 1


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "c" * 101}, "name"),
        ({"name": "Shoes", "slug": "Not A Slug"}, "slug"),
        ({"name": "???"}, "slug"),
    ],
)
async def test_create_category_refuses_bad_input(gateway, admin, variables, field):
    body = await gateway.post(CREATE_CATEGORY, variables, token=admin)

    assert codes(body) == ["BAD_USER_INPUT"]
    assert first_error(body)["extensions"]["field"] == field


async def test_a_taken_category_slug_is_conflict(gateway, admin):
    slug = await new_category(gateway, admin)

    body = await gateway.post(CREATE_CATEGORY, {"name": "Again", "slug": slug}, token=admin)

    assert codes(body) == ["CONFLICT"]
    assert first_error(body)["extensions"]["field"] == "slug"


@pytest.mark.parametrize(
    ("document", "variables", "field"),
    [
        (SEARCH, {"query": "x" * 201}, "query"),
        (SEARCH, {"query": "?!.,;:"}, "query"),
        (SEARCH, {"query": "   "}, "query"),
        (SEARCH, {"query": "lamp", "first": 0}, "first"),
        (SEARCH, {"query": "lamp", "first": 101}, "first"),
        (SEARCH, {"query": "lamp", "after": "not-a-cursor"}, "after"),
        (PRODUCTS, {"first": -3}, "first"),
        (PRODUCTS, {"after": "x" * 3000}, "after"),
        (PRODUCTS, {"sort": "RELEVANCE"}, "sort"),
        (PRODUCTS, {"filter": {"categorySlug": "no-such-category"}}, "filter.categorySlug"),
        (PRODUCTS, {"filter": {"minPrice": "10", "maxPrice": "5"}}, "filter.minPrice"),
        (PRODUCTS, {"filter": {"minPrice": "-1"}}, "filter.minPrice"),
        (PRODUCTS, {"filter": {"maxPrice": "0.001"}}, "filter.maxPrice"),
    ],
)
async def test_listing_and_search_refuse_bad_input_naming_the_argument(gateway, document, variables, field):
    body = await gateway.post(document, variables)

    assert codes(body) == ["BAD_USER_INPUT"], body
    assert first_error(body)["extensions"]["field"] == field


async def test_a_forged_or_replayed_cursor_is_refused(gateway, admin):
    slug = await new_category(gateway, admin)
    for i in range(3):
        await new_product(gateway, admin, slug, name=f"Lamp {i}")
    page = await listed(gateway, slug, first=1, sort="NAME")
    cursor = page["pageInfo"]["endCursor"]
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[-1] ^= 0xFF
    forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")

    tampered = await gateway.post(
        PRODUCTS, {"filter": {"categorySlug": slug}, "sort": "NAME", "after": forged}
    )
    other_sort = await gateway.post(
        PRODUCTS, {"filter": {"categorySlug": slug}, "sort": "NEWEST", "after": cursor}
    )
    other_filter = await gateway.post(PRODUCTS, {"sort": "NAME", "after": cursor})
    in_search = await gateway.post(SEARCH, {"query": "lamp", "sort": "NAME", "after": cursor})

    for body in (tampered, other_sort, other_filter, in_search):
        assert codes(body) == ["BAD_USER_INPUT"]
        assert first_error(body)["extensions"]["field"] == "after"


# -- who may do what --------------------------------------------------------------------------------


async def test_a_customer_or_a_visitor_calling_admin_operations_is_refused_and_nothing_changes(
    gateway, admin, customer
):
    slug = await new_category(gateway, admin)
    lamp = await new_product(gateway, admin, slug, stock=5)
    attempts = [
        (CREATE_PRODUCT, {"input": product_input(slug)}),
        (UPDATE_PRODUCT, {"id": lamp["id"], "input": {"price": "0.01"}}),
        (DELETE_PRODUCT, {"id": lamp["id"]}),
        (CREATE_CATEGORY, {"name": "Sneaky", "slug": unique_slug()}),
        (ADJUST_STOCK, {"id": lamp["id"], "delta": 1000}),
    ]

    for document, variables in attempts:
        as_customer = await gateway.post(document, variables, token=customer)
        as_visitor = await gateway.post(document, variables)
        assert codes(as_customer) == ["FORBIDDEN"], document
        assert codes(as_visitor) == ["UNAUTHENTICATED"], document

    read = await gateway.post(PRODUCT, {"id": lamp["id"]})
    categories = await gateway.post(CATEGORIES)
    assert read["data"]["product"]["price"]["amount"] == "49.99"
    assert (read["data"]["product"]["stock"], read["data"]["product"]["archived"]) == (5, False)
    assert (await listed(gateway, slug))["totalCount"] == 1
    assert "Sneaky" not in [c["name"] for c in categories["data"]["categories"]]


# -- the DataLoader -----------------------------------------------------------------------------------


async def test_every_product_lookup_of_a_request_is_one_batch_call(gateway, admin):
    slug = await new_category(gateway, admin)
    a, b, c = [await new_product(gateway, admin, slug, name=name) for name in ("A", "B", "C")]
    request_id = f"loader-{uuid.uuid4().hex}"

    body = await gateway.post(
        THREE_PRODUCTS, {"a": a["id"], "b": b["id"], "c": c["id"]}, headers={"X-Request-Id": request_id}
    )

    assert "errors" not in body, body
    assert [body["data"][k]["name"] for k in ("a", "b", "c")] == ["A", "B", "C"]
    log = gateway.platform.log_dir / "catalog.log"

    async def logged() -> list[str]:
        calls = await asyncio.to_thread(_catalog_rpcs, log, request_id)
        return calls if len(calls) >= 2 else []

    calls = await eventually(logged, what="the catalog's RPC log lines of the request")
    # One BatchGetProducts for four lookups of three products, one ListCategories for the count.
    assert sorted(calls) == ["BatchGetProducts", "ListCategories"]


def _catalog_rpcs(log: Path, request_id: str) -> list[str]:
    """The catalog methods called for one gateway request, from the catalog's JSON log lines."""
    methods = []
    for line in log.read_text().splitlines():
        if request_id not in line:
            continue
        record = json.loads(line)
        if record.get("message") == "rpc" and record.get("request_id") == request_id:
            methods.append(record["rpc_method"].rsplit("/", 1)[-1])
    return methods


# -- demo data ------------------------------------------------------------------------------------------


async def test_seed_loads_the_demo_catalog_and_shop_once(gateway):
    first = gateway.run_cli("seed")
    second = gateway.run_cli("seed")
    categories = await gateway.post(CATEGORIES)
    featured = await gateway.post(PRODUCTS, {"first": 100, "filter": {"featured": True}})
    headphones = await gateway.post(SEARCH, {"query": "noise cancelling headphones", "first": 5})

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "added" in first.stdout
    assert "0 products and 0 categories added" in second.stdout
    assert "Demo shop loaded: " in first.stdout
    assert "0 shipping methods, 0 tax rates and 0 coupons added" in second.stdout
    germany = await gateway.post('{ shippingMethods(country: "DE") { code } }')
    assert {"STANDARD", "EXPRESS"} <= {m["code"] for m in germany["data"]["shippingMethods"]}
    demo = {c["slug"]: c["productCount"] for c in categories["data"]["categories"]}
    seeded = {
        slug: demo.get(slug, 0)
        for slug in ("electronics", "books", "home-kitchen", "sports-outdoors", "clothing", "toys-games")
    }
    assert all(count >= 8 for count in seeded.values()), seeded
    assert sum(demo.get(s, 0) for s in demo) >= 60
    assert featured["data"]["products"]["totalCount"] >= 3
    assert (
        headphones["data"]["searchProducts"]["edges"][0]["node"]["name"]
        == "Wireless Noise-Cancelling Headphones"
    )


async def test_a_multi_variant_product_is_ordered_by_variant_and_found_by_sku_and_option(
    gateway, admin, customer
):
    slug = await new_category(gateway, admin, name="Shirts")
    sku = f"SHIRT-{uuid.uuid4().hex[:8].upper()}"
    shirt = product_input(
        slug,
        sku=sku,
        name="Linen Shirt",
        price="40.00",
        optionGroups=[
            {"name": "Size", "values": ["S", "M"]},
            {"name": "Colour", "values": ["Saffron", "Navy"]},
        ],
        variants=[
            {
                "sku": f"{sku}-S-SAF",
                "options": [{"group": "Size", "value": "S"}, {"group": "Colour", "value": "Saffron"}],
                "stock": 5,
            },
            {
                "sku": f"{sku}-M-NAV",
                "options": [{"group": "size", "value": "m"}, {"group": "Colour", "value": "Navy"}],
                "price": "44.50",
                "stock": 8,
            },
        ],
        images=[
            {"url": "https://images.example.com/shirt-front.jpg", "alt": "Front"},
            {"url": "https://images.example.com/shirt-back.jpg", "alt": "Back"},
        ],
    )
    del shirt["stock"]  # a product with variants holds no stock of its own
    created = await gateway.post(CREATE_VARIANT_PRODUCT, {"input": shirt}, token=admin)
    assert "errors" not in created, created
    product_id = created["data"]["createProduct"]["id"]
    product = (await gateway.post(VARIANT_PRODUCT, {"id": product_id}))["data"]["product"]
    navy = next(v for v in product["variants"] if v["sku"] == f"{sku}-M-NAV")
    assert navy["options"] == [{"group": "Size", "value": "M"}, {"group": "Colour", "value": "Navy"}]
    assert (navy["name"], navy["price"]["amount"], navy["stock"]) == ("M / Navy", "44.50", 8)
    assert product["stock"] == 13
    assert product["priceRange"] == {"min": {"amount": "40.00"}, "max": {"amount": "44.50"}}
    assert [i["position"] for i in product["images"]] == [0, 1]
    assert product["featuredImage"] == {"url": "https://images.example.com/shirt-front.jpg"}

    order = await gateway.post(
        CREATE_ORDER,
        {
            "input": {
                "items": [{"productId": product_id, "variantId": navy["id"], "quantity": 3}],
                "paymentToken": "tok_visa",
                "shippingAddress": {
                    "name": "Ada Lovelace",
                    "line1": "12 Analytical Row",
                    "city": "London",
                    "postalCode": "N1 9GU",
                    "country": "GB",
                },
            }
        },
        token=customer,
    )
    assert order["data"]["createOrder"]["status"] == "CONFIRMED", order

    async def stock_went_down() -> dict | None:
        read = (await gateway.post(VARIANT_PRODUCT, {"id": product_id}))["data"]["product"]
        return read if read["stock"] == 10 else None

    after = await eventually(stock_went_down, timeout=30, what="the ordered variant's stock to go down")
    assert {v["sku"]: v["stock"] for v in after["variants"]} == {f"{sku}-S-SAF": 5, f"{sku}-M-NAV": 5}
    in_category = {"filter": {"categorySlug": slug}}
    by_sku = await gateway.post(SEARCH, {"query": f"{sku}-M-NAV", **in_category})
    by_option = await gateway.post(SEARCH, {"query": "saffron", **in_category})
    assert [e["node"]["id"] for e in by_sku["data"]["searchProducts"]["edges"]] == [product_id]
    assert [e["node"]["id"] for e in by_option["data"]["searchProducts"]["edges"]] == [product_id]
