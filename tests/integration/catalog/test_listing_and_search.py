"""Listing and search: filters, sorts, keyset cursors that cannot be forged or replayed, ranking."""

from __future__ import annotations

import base64
import uuid

import grpc
import pytest

from ecommerce.catalog.v1 import catalog_pb2
from servicekit.rpc_status import parse_rpc_error

pytestmark = pytest.mark.usefixtures("clean_catalog")

Sort = catalog_pb2.ProductSort
Filter = catalog_pb2.ProductFilter


async def rpc_error(awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable
    return caught.value


def violated(error: grpc.aio.AioRpcError) -> list[str]:
    return [v.field for v in parse_rpc_error(error).violations]


async def list_all(catalog, *, page_size: int, search: str | None = None, on_page=None, **request) -> list:
    """Every page of a listing or search, following next_page_token; `on_page` runs between pages."""
    seen, token = [], ""
    while True:
        if search is None:
            page = await catalog.stub.ListProducts(
                catalog_pb2.ListProductsRequest(page_size=page_size, page_token=token, **request)
            )
        else:
            page = await catalog.stub.SearchProducts(
                catalog_pb2.SearchProductsRequest(
                    query=search, page_size=page_size, page_token=token, **request
                )
            )
        assert len(page.cursors) == len(page.products)
        seen.extend(page.products)
        if on_page is not None:
            await on_page()
        if not page.has_next_page:
            return seen
        assert page.next_page_token == page.cursors[-1]
        token = page.next_page_token


@pytest.fixture
async def shop(catalog):
    """Eight products in two categories with distinct prices, names and stock."""
    lighting = await catalog.category(slug="lighting", name="Lighting")
    office = await catalog.category(slug="office", name="Office")
    specs = [
        ("banker lamp", lighting, 4500, 3, False),
        ("Arc Floor Lamp", lighting, 12900, 0, True),
        ("candle holder", lighting, 1500, 20, False),
        ("Desk Lamp", lighting, 2999, 7, True),
        ("Ergonomic Chair", office, 24900, 2, True),
        ("filing cabinet", office, 8900, 0, False),
        ("Greenery Planter", office, 3500, 11, False),
        ("Highlighter Set", office, 499, 100, False),
    ]
    products = []
    for name, category, price, stock, featured in specs:
        products.append(
            await catalog.product(category, name=name, price_minor=price, stock=stock, featured=featured)
        )
    return products


# -- filters and sorts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "key", "reverse"),
    [
        (Sort.PRODUCT_SORT_NEWEST, lambda p: (p.created_at.ToDatetime(), p.id), True),
        (Sort.PRODUCT_SORT_UNSPECIFIED, lambda p: (p.created_at.ToDatetime(), p.id), True),
        (Sort.PRODUCT_SORT_PRICE_ASC, lambda p: (p.price.amount_minor, p.id), False),
        (Sort.PRODUCT_SORT_PRICE_DESC, lambda p: (p.price.amount_minor, p.id), True),
        (Sort.PRODUCT_SORT_NAME, lambda p: (p.name.lower(), p.id), False),
    ],
)
async def test_every_sort_pages_through_all_products_in_order_without_duplicates(
    catalog, shop, sort, key, reverse
):
    listed = await list_all(catalog, page_size=3, sort=sort)

    assert [p.id for p in listed] == [p.id for p in sorted(shop, key=key, reverse=reverse)]


async def test_filters_combine(catalog, shop):
    async def names(**filter_fields) -> list[str]:
        page = await catalog.stub.ListProducts(
            catalog_pb2.ListProductsRequest(filter=Filter(**filter_fields), sort=Sort.PRODUCT_SORT_PRICE_ASC)
        )
        assert page.total_count == len(page.products)
        return [p.name for p in page.products]

    assert await names(category_slug="lighting") == [
        "candle holder",
        "Desk Lamp",
        "banker lamp",
        "Arc Floor Lamp",
    ]
    assert await names(category_slug="lighting", in_stock_only=True) == [
        "candle holder",
        "Desk Lamp",
        "banker lamp",
    ]
    assert await names(featured_only=True) == ["Desk Lamp", "Arc Floor Lamp", "Ergonomic Chair"]
    assert await names(min_price_minor=3500, max_price_minor=8900) == [
        "Greenery Planter",
        "banker lamp",
        "filing cabinet",
    ]
    assert await names(min_price="35", max_price="89.00", in_stock_only=True) == [
        "Greenery Planter",
        "banker lamp",
    ]
    assert await names(category_slug="office", featured_only=True, in_stock_only=True) == ["Ergonomic Chair"]
    assert await names(max_price="4.98") == []


async def test_total_count_counts_every_page_and_a_cursor_resumes_after_its_item(catalog, shop):
    first = await catalog.stub.ListProducts(
        catalog_pb2.ListProductsRequest(page_size=3, sort=Sort.PRODUCT_SORT_NAME)
    )
    resumed = await catalog.stub.ListProducts(
        catalog_pb2.ListProductsRequest(page_size=2, sort=Sort.PRODUCT_SORT_NAME, page_token=first.cursors[0])
    )
    default_size = await catalog.stub.ListProducts(catalog_pb2.ListProductsRequest())

    assert (first.total_count, first.has_next_page) == (8, True)
    assert [p.name for p in first.products] == ["Arc Floor Lamp", "banker lamp", "candle holder"]
    assert [p.name for p in resumed.products] == ["banker lamp", "candle holder"]
    assert resumed.total_count == 8
    assert (len(default_size.products), default_size.has_next_page) == (8, False)


async def test_pagination_sees_every_product_once_while_new_ones_are_added(catalog, shop):
    category = await catalog.category(slug="arrivals")

    async def add_one() -> None:
        await catalog.product(category, name=f"New Arrival {uuid.uuid4().hex[:6]}", price_minor=2000)

    listed = await list_all(catalog, page_size=2, sort=Sort.PRODUCT_SORT_PRICE_ASC, on_page=add_one)
    ids = [p.id for p in listed]

    assert len(ids) == len(set(ids))
    assert {p.id for p in shop} <= set(ids)


# -- bad listing input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_size": -1}, "page_size"),
        ({"page_size": 101}, "page_size"),
        ({"sort": Sort.PRODUCT_SORT_RELEVANCE}, "sort"),
        ({"sort": 42}, "sort"),
        ({"filter": Filter(category_slug="nope")}, "filter.category_slug"),
        ({"filter": Filter(min_price_minor=500, max_price_minor=100)}, "filter.min_price"),
        ({"filter": Filter(min_price_minor=-1)}, "filter.min_price"),
        ({"filter": Filter(min_price="1.001")}, "filter.min_price"),
        ({"filter": Filter(max_price="ten")}, "filter.max_price"),
        ({"filter": Filter(max_price="NaN")}, "filter.max_price"),
        ({"filter": Filter(min_price="1", min_price_minor=100)}, "filter.min_price"),
        ({"page_token": "garbage!!"}, "page_token"),
        ({"page_token": "x" * 5000}, "page_token"),
    ],
)
async def test_list_products_refuses_bad_input_naming_the_field(catalog, shop, request_fields, field):
    error = await rpc_error(catalog.stub.ListProducts(catalog_pb2.ListProductsRequest(**request_fields)))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated(error) == [field]


async def test_a_forged_cursor_is_refused(catalog, shop):
    page = await catalog.stub.ListProducts(catalog_pb2.ListProductsRequest(page_size=2))
    raw = bytearray(base64.urlsafe_b64decode(page.next_page_token + "=" * (-len(page.next_page_token) % 4)))
    raw[10] ^= 0x01
    forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")

    error = await rpc_error(catalog.stub.ListProducts(catalog_pb2.ListProductsRequest(page_token=forged)))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated(error) == ["page_token"]


@pytest.mark.parametrize(
    "other",
    [
        {"sort": Sort.PRODUCT_SORT_PRICE_ASC},
        {"sort": Sort.PRODUCT_SORT_NAME, "filter": Filter(category_slug="office")},
        {"sort": Sort.PRODUCT_SORT_NAME, "filter": Filter(in_stock_only=True)},
    ],
)
async def test_a_cursor_cannot_be_replayed_on_another_listing(catalog, shop, other):
    page = await catalog.stub.ListProducts(
        catalog_pb2.ListProductsRequest(page_size=2, sort=Sort.PRODUCT_SORT_NAME)
    )

    error = await rpc_error(
        catalog.stub.ListProducts(catalog_pb2.ListProductsRequest(page_token=page.next_page_token, **other))
    )
    in_search = await rpc_error(
        catalog.stub.SearchProducts(
            catalog_pb2.SearchProductsRequest(
                query="lamp", sort=Sort.PRODUCT_SORT_NAME, page_token=page.next_page_token
            )
        )
    )

    assert error.code() == in_search.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated(error) == violated(in_search) == ["page_token"]


# -- search ---------------------------------------------------------------------------------------


@pytest.fixture
async def audio(catalog):
    category = await catalog.category(slug="audio", name="Audio")
    other = await catalog.category(slug="kitchen", name="Kitchen")
    made = {}
    for name, description, category_, price in [
        ("Wireless Noise-Cancelling Headphones", "Over-ear, 30-hour battery.", category, 24900),
        ("Studio Monitor Headphones", "Closed-back wired headphones for mixing.", category, 14900),
        ("Bluetooth Speaker", "Pairs with your headphones and phone.", category, 5900),
        ("Electric Gooseneck Kettle", "Pour-over coffee and tea.", other, 7900),
        ("Cast Iron Skillet", "Sears steaks; pairs with the kettle.", other, 3900),
    ]:
        made[name] = await catalog.product(category_, name=name, description=description, price_minor=price)
    return made


async def search_names(catalog, query: str, **fields) -> list[str]:
    page = await catalog.stub.SearchProducts(catalog_pb2.SearchProductsRequest(query=query, **fields))
    assert page.total_count == len(page.products)
    return [p.name for p in page.products]


@pytest.mark.parametrize(
    "query",
    ["headphone", "HEADPHONES", "headph", "hedphones", "headphons", "wireles hedphones"],
)
async def test_search_finds_stems_prefixes_and_typos(catalog, audio, query):
    names = await search_names(catalog, query)

    assert names[0] in ("Wireless Noise-Cancelling Headphones", "Studio Monitor Headphones")
    assert "Electric Gooseneck Kettle" not in names


async def test_a_name_match_ranks_above_a_description_only_match(catalog, audio):
    headphones = await search_names(catalog, "headphones")
    kettle = await search_names(catalog, "kettle")

    assert headphones[-1] == "Bluetooth Speaker"
    assert set(headphones[:2]) == {"Wireless Noise-Cancelling Headphones", "Studio Monitor Headphones"}
    assert kettle == ["Electric Gooseneck Kettle", "Cast Iron Skillet"]


async def test_search_understands_websearch_syntax(catalog, audio):
    assert await search_names(catalog, "headphones -wired") == [
        "Wireless Noise-Cancelling Headphones",
        "Bluetooth Speaker",
    ]
    assert await search_names(catalog, '"cast iron"') == ["Cast Iron Skillet"]
    assert set(await search_names(catalog, "kettle or speaker")) >= {
        "Electric Gooseneck Kettle",
        "Bluetooth Speaker",
    }


async def test_search_combines_with_filters_and_other_sorts(catalog, audio):
    assert await search_names(catalog, "headphones", filter=Filter(max_price_minor=15000)) == [
        "Studio Monitor Headphones",
        "Bluetooth Speaker",
    ]
    assert await search_names(catalog, "kettle", filter=Filter(category_slug="audio")) == []
    assert await search_names(catalog, "headphones", sort=Sort.PRODUCT_SORT_PRICE_ASC) == [
        "Bluetooth Speaker",
        "Studio Monitor Headphones",
        "Wireless Noise-Cancelling Headphones",
    ]


async def test_search_pages_through_every_match_once_while_matching_products_are_added(catalog):
    category = await catalog.category(slug="lamps")
    originals = [
        await catalog.product(category, name=f"Lamp model {i}", description="a lamp" * (i % 3 + 1))
        for i in range(9)
    ]

    async def add_one() -> None:
        await catalog.product(category, name=f"Lamp model new {uuid.uuid4().hex[:4]}", description="a lamp")

    listed = await list_all(catalog, page_size=2, search="lamp", on_page=add_one)
    ids = [p.id for p in listed]

    assert len(ids) == len(set(ids))
    assert {p.id for p in originals} <= set(ids)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "query"),
        ("    ", "query"),
        ("x" * 201, "query"),
        ("!!! ??? ...", "query"),
        ("'\"-&|!()", "query"),
        ("lamp\x00", "query"),
    ],
)
async def test_search_refuses_empty_oversized_and_punctuation_only_queries(catalog, query, field):
    error = await rpc_error(catalog.stub.SearchProducts(catalog_pb2.SearchProductsRequest(query=query)))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated(error) == [field]


async def test_a_search_cursor_is_bound_to_its_query(catalog, audio):
    page = await catalog.stub.SearchProducts(
        catalog_pb2.SearchProductsRequest(query="headphones", page_size=1)
    )

    other_query = await rpc_error(
        catalog.stub.SearchProducts(
            catalog_pb2.SearchProductsRequest(query="kettle", page_token=page.next_page_token)
        )
    )
    same_query = await catalog.stub.SearchProducts(
        catalog_pb2.SearchProductsRequest(query="headphones", page_size=1, page_token=page.next_page_token)
    )

    assert other_query.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated(other_query) == ["page_token"]
    assert same_query.products[0].id != page.products[0].id
