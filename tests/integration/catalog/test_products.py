"""Products, categories and stock over gRPC: ADMIN writes, public reads, hostile input, events."""

from __future__ import annotations

import uuid

import grpc
import pytest

from catalog.__main__ import seed
from ecommerce.catalog.v1 import catalog_pb2
from ecommerce.common.v1 import money_pb2
from ecommerce.events.v1 import catalog_events_pb2, envelope_pb2
from servicekit.rpc_status import parse_rpc_error
from servicekit.security import SigningKey, TokenIssuer
from tests.helpers import eventually
from tests.integration.catalog.commands import RESERVE, reserve_command

pytestmark = pytest.mark.usefixtures("clean_catalog")


async def rpc_error(awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable
    return caught.value


def violated(error: grpc.aio.AioRpcError) -> list[str]:
    return [v.field for v in parse_rpc_error(error).violations]


async def written(catalog) -> tuple[int, int]:
    """Products and outbox events: what a refused request must not have changed."""
    [(products,)] = await catalog.execute("SELECT count(*) FROM products")
    [(outbox,)] = await catalog.execute("SELECT count(*) FROM outbox")
    return products, outbox


def create_request(**overrides) -> catalog_pb2.CreateProductRequest:
    values = {
        "sku": "lamp-001",
        "name": "Desk Lamp",
        "description": "A warm LED desk lamp.\nDimmable.",
        "price": money_pb2.Money(amount_minor=4999, currency="EUR"),
        "category_slug": "lighting",
        "stock": 12,
        "featured": True,
    }
    values.update(overrides)
    return catalog_pb2.CreateProductRequest(**values)


async def outbox_events(catalog, key: str, topic: str = "catalog.events") -> list[str]:
    rows = await catalog.execute(
        "SELECT event_type FROM outbox WHERE topic = :topic AND key = :key ORDER BY id", topic=topic, key=key
    )
    return [row[0] for row in rows]


# -- create ---------------------------------------------------------------------------------------


async def test_an_admin_creates_a_product_and_its_event_reaches_the_broker(catalog):
    category = await catalog.category(slug="lighting", name="Lighting")

    response = await catalog.stub.CreateProduct(create_request(), metadata=catalog.admin)
    product = response.product

    assert (product.sku, product.name, product.stock, product.featured) == ("LAMP-001", "Desk Lamp", 12, True)
    assert (product.price.amount_minor, product.price.currency) == (4999, "EUR")
    assert (product.category.slug, product.category.name) == ("lighting", "Lighting")
    assert product.category.id == category.id
    assert product.low_stock_threshold == catalog.settings.low_stock_threshold
    assert not product.archived
    assert await outbox_events(catalog, product.id) == ["catalog.product_created"]

    async def published() -> list[envelope_pb2.EventEnvelope]:
        return [e for e in catalog.catalog_events if e.aggregate_id == product.id]

    [envelope] = await eventually(published, timeout=15, what="catalog.product_created on the broker")
    created = catalog_events_pb2.ProductCreated()
    assert envelope.payload.Unpack(created)
    assert created.product == product


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"price": money_pb2.Money(amount_minor=0, currency="EUR")}, "price"),
        ({"price": money_pb2.Money(amount_minor=-100, currency="EUR")}, "price"),
        ({"price": money_pb2.Money(amount_minor=100_000_001, currency="EUR")}, "price"),
        ({"price": money_pb2.Money(amount_minor=1_000_001, currency="JPY")}, "price"),
        ({"price": money_pb2.Money(amount_minor=100, currency="ABC")}, "currency"),
        ({"price": money_pb2.Money(amount_minor=100, currency="DEM")}, "currency"),
        ({"price": money_pb2.Money(amount_minor=100, currency="EURO")}, "currency"),
        ({"price": money_pb2.Money(amount_minor=100, currency="")}, "currency"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "x" * 1_000_000}, "name"),
        ({"name": "Lamp\x00"}, "name"),
        ({"name": "Lamp\u202egnp.exe"}, "name"),
        ({"description": "d" * 10_001}, "description"),
        ({"description": "nul\x00byte"}, "description"),
        ({"sku": ""}, "sku"),
        ({"sku": "a b"}, "sku"),
        ({"sku": "'; DROP TABLE products; --"}, "sku"),
        ({"sku": "S" * 65}, "sku"),
        ({"stock": -1}, "stock"),
        ({"category_slug": "no-such-category"}, "category_slug"),
        ({"category_slug": ""}, "category_slug"),
        ({"low_stock_threshold": -5}, "low_stock_threshold"),
    ],
)
async def test_create_product_refuses_bad_input_naming_the_field_and_writes_nothing(
    catalog, overrides, field
):
    await catalog.category(slug="lighting")

    error = await rpc_error(catalog.stub.CreateProduct(create_request(**overrides), metadata=catalog.admin))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violated(error)
    assert await written(catalog) == (0, 0)


async def test_a_duplicate_sku_in_any_case_is_already_exists_naming_the_sku(catalog):
    await catalog.category(slug="lighting")
    await catalog.stub.CreateProduct(create_request(sku="LAMP-1"), metadata=catalog.admin)
    before = await written(catalog)

    error = await rpc_error(catalog.stub.CreateProduct(create_request(sku="lamp-1"), metadata=catalog.admin))

    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert parse_rpc_error(error).metadata["field"] == "sku"
    assert await written(catalog) == before


async def test_writes_need_an_admin_token_and_write_nothing_otherwise(catalog):
    category = await catalog.category(slug="lighting")
    product = await catalog.product(category, stock=3)
    before = await written(catalog)
    # Signed by a key of the forger's own under the real key's id: the signature does not verify.
    # (A key id the service does not know makes it refetch the key set first: tests/unit/test_auth.py.)
    forger = TokenIssuer(
        SigningKey.generate(kid=catalog.keys.key.kid),
        issuer=catalog.settings.jwt_issuer,
        audience=catalog.settings.jwt_audience,
    )
    forged, _ = forger.issue(str(uuid.uuid4()), "ADMIN")
    calls = {
        "create": lambda md: catalog.stub.CreateProduct(create_request(), metadata=md),
        "update": lambda md: catalog.stub.UpdateProduct(
            catalog_pb2.UpdateProductRequest(product_id=product.id, name="Mine now"), metadata=md
        ),
        "archive": lambda md: catalog.stub.ArchiveProduct(
            catalog_pb2.ArchiveProductRequest(product_id=product.id), metadata=md
        ),
        "category": lambda md: catalog.stub.CreateCategory(
            catalog_pb2.CreateCategoryRequest(name="Shoes"), metadata=md
        ),
        "adjust": lambda md: catalog.stub.AdjustStock(
            catalog_pb2.AdjustStockRequest(product_id=product.id, delta=100), metadata=md
        ),
        "stock": lambda md: catalog.stub.GetStock(
            catalog_pb2.GetStockRequest(product_ids=[product.id]), metadata=md
        ),
    }

    for name, call in calls.items():
        customer = await rpc_error(call(catalog.token("CUSTOMER")))
        anonymous = await rpc_error(call(None))
        forgery = await rpc_error(call([("authorization", f"Bearer {forged}")]))
        assert customer.code() == grpc.StatusCode.PERMISSION_DENIED, name
        assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED, name
        assert forgery.code() == grpc.StatusCode.UNAUTHENTICATED, name
    assert await written(catalog) == before
    [(name, stock)] = await catalog.execute(
        "SELECT p.name, v.stock FROM products p JOIN product_variants v ON v.product_id = p.id"
    )
    assert (name, stock) == ("Desk Lamp", 3)
    [(categories,)] = await catalog.execute("SELECT count(*) FROM categories")
    assert categories == 1


# -- update and archive ---------------------------------------------------------------------------


async def test_update_changes_only_the_fields_given_and_says_which(catalog):
    category = await catalog.category(slug="lighting")
    other = await catalog.category(slug="office", name="Office")
    product = await catalog.product(category, name="Desk Lamp", price_minor=1999, description="Warm light")

    response = await catalog.stub.UpdateProduct(
        catalog_pb2.UpdateProductRequest(
            product_id=product.id,
            name="Desk Lamp Pro",
            price=money_pb2.Money(amount_minor=2499, currency="USD"),
            category_slug="office",
            featured=True,
        ),
        metadata=catalog.admin,
    )
    unchanged = await catalog.stub.UpdateProduct(
        catalog_pb2.UpdateProductRequest(product_id=product.id, name="Desk Lamp Pro"), metadata=catalog.admin
    )

    updated = response.product
    assert (updated.name, updated.price.amount_minor, updated.category.id, updated.featured) == (
        "Desk Lamp Pro",
        2499,
        other.id,
        True,
    )
    assert (updated.description, updated.sku, updated.stock) == ("Warm light", product.sku, product.stock)
    assert updated.updated_at.ToDatetime() > product.updated_at.ToDatetime()
    assert unchanged.product == updated
    rows = await catalog.execute(
        "SELECT payload FROM outbox WHERE key = :key AND event_type = 'catalog.product_updated'",
        key=product.id,
    )
    assert len(rows) == 1
    event = catalog_events_pb2.ProductUpdated()
    envelope_pb2.EventEnvelope.FromString(rows[0][0]).payload.Unpack(event)
    assert sorted(event.changed_fields) == ["category", "featured", "name", "price"]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"description": "d" * 10_001}, "description"),
        ({"sku": "bad sku"}, "sku"),
        ({"price": money_pb2.Money(amount_minor=0, currency="USD")}, "price"),
        ({"price": money_pb2.Money(amount_minor=100, currency="ZZZ")}, "currency"),
        ({"category_slug": "missing"}, "category_slug"),
        ({"low_stock_threshold": -1}, "low_stock_threshold"),
        ({"product_id": "not-a-uuid"}, "product_id"),
    ],
)
async def test_update_refuses_bad_input_and_changes_nothing(catalog, request_fields, field):
    category = await catalog.category(slug="lighting")
    product = await catalog.product(category)
    before = await written(catalog)

    error = await rpc_error(
        catalog.stub.UpdateProduct(
            catalog_pb2.UpdateProductRequest(**{"product_id": product.id, **request_fields}),
            metadata=catalog.admin,
        )
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violated(error)
    assert await written(catalog) == before
    assert (
        await catalog.stub.GetProduct(catalog_pb2.GetProductRequest(product_id=product.id))
    ).product == product


async def test_update_to_a_taken_sku_is_already_exists_and_of_an_unknown_product_not_found(catalog):
    category = await catalog.category(slug="lighting")
    await catalog.product(category, sku="TAKEN-1")
    product = await catalog.product(category, sku="MINE-1")

    taken = await rpc_error(
        catalog.stub.UpdateProduct(
            catalog_pb2.UpdateProductRequest(product_id=product.id, sku="taken-1"), metadata=catalog.admin
        )
    )
    unknown = await rpc_error(
        catalog.stub.UpdateProduct(
            catalog_pb2.UpdateProductRequest(product_id=str(uuid.uuid4()), name="x"), metadata=catalog.admin
        )
    )

    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
    assert parse_rpc_error(taken).metadata["field"] == "sku"
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


async def test_archiving_is_idempotent_hides_the_product_from_listings_but_not_from_lookups(catalog):
    category = await catalog.category(slug="lighting")
    product = await catalog.product(category)

    first = await catalog.stub.ArchiveProduct(
        catalog_pb2.ArchiveProductRequest(product_id=product.id), metadata=catalog.admin
    )
    again = await catalog.stub.ArchiveProduct(
        catalog_pb2.ArchiveProductRequest(product_id=product.id), metadata=catalog.admin
    )
    update = await rpc_error(
        catalog.stub.UpdateProduct(
            catalog_pb2.UpdateProductRequest(product_id=product.id, name="Back"), metadata=catalog.admin
        )
    )
    listing = await catalog.stub.ListProducts(catalog_pb2.ListProductsRequest())
    search = await catalog.stub.SearchProducts(catalog_pb2.SearchProductsRequest(query="lamp"))
    got = await catalog.stub.GetProduct(catalog_pb2.GetProductRequest(product_id=product.id))
    batch = await catalog.stub.BatchGetProducts(catalog_pb2.BatchGetProductsRequest(product_ids=[product.id]))
    admin_listing = await catalog.stub.ListProducts(
        catalog_pb2.ListProductsRequest(filter=catalog_pb2.ProductFilter(include_archived=True)),
        metadata=catalog.admin,
    )
    customer_listing = await rpc_error(
        catalog.stub.ListProducts(
            catalog_pb2.ListProductsRequest(filter=catalog_pb2.ProductFilter(include_archived=True)),
            metadata=catalog.token("CUSTOMER"),
        )
    )
    categories = await catalog.stub.ListCategories(catalog_pb2.ListCategoriesRequest())

    assert first.product.archived
    assert again.product == first.product
    assert update.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (listing.total_count, search.total_count) == (0, 0)
    assert got.product.archived
    assert [p.id for p in batch.products] == [product.id]
    assert [p.id for p in admin_listing.products] == [product.id]
    assert customer_listing.code() == grpc.StatusCode.PERMISSION_DENIED
    assert [(c.slug, c.product_count) for c in categories.categories] == [("lighting", 0)]
    assert await outbox_events(catalog, product.id) == ["catalog.product_created", "catalog.product_archived"]


async def test_archive_of_an_unknown_product_is_not_found(catalog):
    error = await rpc_error(
        catalog.stub.ArchiveProduct(
            catalog_pb2.ArchiveProductRequest(product_id=str(uuid.uuid4())), metadata=catalog.admin
        )
    )

    assert error.code() == grpc.StatusCode.NOT_FOUND


# -- reads ------------------------------------------------------------------------------------------


async def test_get_and_batch_get_answer_what_exists_and_refuse_malformed_ids(catalog):
    category = await catalog.category(slug="lighting")
    a = await catalog.product(category, name="A")
    b = await catalog.product(category, name="B")
    unknown = str(uuid.uuid4())

    batch = await catalog.stub.BatchGetProducts(
        catalog_pb2.BatchGetProductsRequest(product_ids=[a.id, unknown, b.id, a.id])
    )
    missing = await rpc_error(catalog.stub.GetProduct(catalog_pb2.GetProductRequest(product_id=unknown)))
    malformed = await rpc_error(catalog.stub.GetProduct(catalog_pb2.GetProductRequest(product_id="1 OR 1=1")))
    too_many = await rpc_error(
        catalog.stub.BatchGetProducts(
            catalog_pb2.BatchGetProductsRequest(product_ids=[str(uuid.uuid4()) for _ in range(101)])
        )
    )
    bad_batch = await rpc_error(
        catalog.stub.BatchGetProducts(catalog_pb2.BatchGetProductsRequest(product_ids=[a.id, "nope"]))
    )

    assert sorted(p.name for p in batch.products) == ["A", "B"]
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert malformed.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated(malformed) == ["product_id"]
    assert too_many.code() == bad_batch.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated(too_many) == violated(bad_batch) == ["product_ids"]


async def test_categories_are_listed_by_name_with_their_active_product_counts(catalog):
    shoes = await catalog.category(slug="shoes", name="Shoes")
    audio = await catalog.category(slug="audio", name="Audio")
    await catalog.category(slug="empty", name="Empty")
    for _ in range(3):
        await catalog.product(shoes)
    await catalog.product(audio)

    response = await catalog.stub.ListCategories(catalog_pb2.ListCategoriesRequest())

    assert [(c.slug, c.name, c.product_count) for c in response.categories] == [
        ("audio", "Audio", 1),
        ("empty", "Empty", 0),
        ("shoes", "Shoes", 3),
    ]


async def test_a_category_slug_is_derived_from_its_name_and_must_be_unique(catalog):
    derived = await catalog.stub.CreateCategory(
        catalog_pb2.CreateCategoryRequest(name="  Home & Garden  "), metadata=catalog.admin
    )
    accented = await catalog.stub.CreateCategory(
        catalog_pb2.CreateCategoryRequest(name="Crème Brûlée Tools"), metadata=catalog.admin
    )
    duplicate = await rpc_error(
        catalog.stub.CreateCategory(
            catalog_pb2.CreateCategoryRequest(name="Other", slug="home-garden"), metadata=catalog.admin
        )
    )

    assert (derived.category.slug, derived.category.name, derived.category.product_count) == (
        "home-garden",
        "Home & Garden",
        0,
    )
    assert accented.category.slug == "creme-brulee-tools"
    assert duplicate.code() == grpc.StatusCode.ALREADY_EXISTS
    assert parse_rpc_error(duplicate).metadata["field"] == "slug"


@pytest.mark.parametrize(
    ("name", "slug", "field"),
    [
        ("", "", "name"),
        ("x" * 101, "", "name"),
        ("Tab\tName", "", "name"),
        ("!!!", "", "slug"),
        ("Shoes", "Shoes", "slug"),
        ("Shoes", "shoes--x", "slug"),
        ("Shoes", "s" * 65, "slug"),
        ("Shoes", "shoes/../admin", "slug"),
    ],
)
async def test_create_category_refuses_bad_input(catalog, name, slug, field):
    error = await rpc_error(
        catalog.stub.CreateCategory(
            catalog_pb2.CreateCategoryRequest(name=name, slug=slug), metadata=catalog.admin
        )
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violated(error)
    assert await catalog.execute("SELECT slug FROM categories") == []


# -- stock ------------------------------------------------------------------------------------------


async def test_adjust_stock_adds_and_removes_units_and_publishes_the_change(catalog):
    category = await catalog.category(slug="lighting")
    product = await catalog.product(category, stock=10, low_stock_threshold=4)
    admin = catalog.admin

    added = await catalog.stub.AdjustStock(
        catalog_pb2.AdjustStockRequest(product_id=product.id, delta=5, reason="delivery"), metadata=admin
    )
    removed = await catalog.stub.AdjustStock(
        catalog_pb2.AdjustStockRequest(product_id=product.id, delta=-12, reason="damaged"), metadata=admin
    )

    assert (added.product.stock, removed.product.stock) == (15, 3)
    assert await outbox_events(catalog, product.id) == [
        "catalog.product_created",
        "catalog.stock_changed",
        "catalog.stock_changed",
        "catalog.stock_low",
    ]
    [(raw,)] = await catalog.execute(
        "SELECT payload FROM outbox WHERE key = :key AND event_type = 'catalog.stock_changed' ORDER BY id DESC "
        "LIMIT 1",
        key=product.id,
    )
    change = catalog_events_pb2.StockChanged()
    envelope_pb2.EventEnvelope.FromString(raw).payload.Unpack(change)
    assert (change.old_stock, change.new_stock, change.delta, change.reason) == (15, 3, -12, "damaged")
    assert change.cause == catalog_events_pb2.STOCK_CHANGE_CAUSE_ADJUSTMENT
    assert change.changed_by


@pytest.mark.parametrize(("delta", "field"), [(-11, "delta"), (0, "delta"), (2_000_000_000, "delta")])
async def test_adjust_stock_never_goes_below_zero_or_overflows_and_writes_nothing(catalog, delta, field):
    category = await catalog.category(slug="lighting")
    product = await catalog.product(category, stock=10)
    before = await written(catalog)

    error = await rpc_error(
        catalog.stub.AdjustStock(
            catalog_pb2.AdjustStockRequest(product_id=product.id, delta=delta), metadata=catalog.admin
        )
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated(error) == [field]
    assert await catalog.stock(product.id) == 10
    assert await written(catalog) == before


async def test_adjust_stock_of_an_unknown_product_is_not_found(catalog):
    error = await rpc_error(
        catalog.stub.AdjustStock(
            catalog_pb2.AdjustStockRequest(product_id=str(uuid.uuid4()), delta=1), metadata=catalog.admin
        )
    )

    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_get_stock_shows_what_reservations_hold(catalog):
    category = await catalog.category(slug="lighting")
    product = await catalog.product(category, stock=10, low_stock_threshold=2)
    order = str(uuid.uuid4())
    await catalog.handle(RESERVE, reserve_command(order, [(product.id, 4)]), order)

    response = await catalog.stub.GetStock(
        catalog_pb2.GetStockRequest(product_ids=[product.id, str(uuid.uuid4())]), metadata=catalog.admin
    )

    [level] = response.levels
    assert (level.product_id, level.available, level.reserved, level.low_stock_threshold) == (
        product.id,
        6,
        4,
        2,
    )


# -- demo data ------------------------------------------------------------------------------------


async def test_the_demo_catalog_loads_on_an_empty_catalog_once_and_reloading_adds_nothing(catalog):
    settings = {"database_url": catalog.settings.database_url, "redis_url": catalog.settings.redis_url}

    first = await seed(only_if_empty=True, **settings)
    skipped = await seed(only_if_empty=True, **settings)
    again = await seed(**settings)

    assert first is not None
    assert first.categories >= 6
    assert first.products >= 60
    assert skipped is None
    assert (again.categories, again.products) == (0, 0)
    [(products, categories, featured, priced)] = await catalog.execute(
        "SELECT count(*), count(DISTINCT category_id), count(*) FILTER (WHERE featured), "
        "count(*) FILTER (WHERE price_minor > 0 AND EXISTS "
        "(SELECT 1 FROM product_variants v WHERE v.product_id = products.id)) FROM products"
    )
    assert (products, categories) == (first.products, first.categories)
    assert 3 <= featured < products
    assert priced == products
    # Some products come in sizes and colours, with pictures (addresses only).
    [(multi_variant, pictured)] = await catalog.execute(
        "SELECT (SELECT count(*) FROM (SELECT product_id FROM product_variants GROUP BY product_id "
        "HAVING count(*) > 1) m), (SELECT count(DISTINCT product_id) FROM product_images)"
    )
    assert multi_variant >= 3
    assert pictured >= 3
    assert await catalog.execute(
        "SELECT count(*) FROM outbox WHERE event_type = 'catalog.product_created'"
    ) == [(products,)]
