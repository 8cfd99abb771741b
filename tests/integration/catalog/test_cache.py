"""The Redis cache: reads hit it, the catalog's own writes make it current, and its absence only slows reads."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest

from catalog.__main__ import build
from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecommerce.common.v1 import money_pb2
from servicekit import changefeed
from servicekit.changefeed import Change
from servicekit.embedded import EmbeddedRedis
from tests.helpers import eventually
from tests.integration.catalog.commands import RESERVE, reserve_command

pytestmark = pytest.mark.usefixtures("clean_catalog")


async def reads(stub, product: catalog_pb2.Product) -> dict[str, int]:
    """The product's price as every read path reports it."""
    got = await stub.GetProduct(catalog_pb2.GetProductRequest(product_id=product.id))
    batch = await stub.BatchGetProducts(catalog_pb2.BatchGetProductsRequest(product_ids=[product.id]))
    listed = await stub.ListProducts(catalog_pb2.ListProductsRequest())
    found = await stub.SearchProducts(catalog_pb2.SearchProductsRequest(query=product.name))
    return {
        "get": got.product.price.amount_minor,
        "batch": batch.products[0].price.amount_minor,
        "list": listed.products[0].price.amount_minor,
        "search": found.products[0].price.amount_minor,
    }


async def test_a_repeated_read_is_served_from_the_cache(catalog):
    category = await catalog.category()
    product = await catalog.product(category, name="Desk Lamp")
    cache = catalog.app.cache

    await reads(catalog.stub, product)
    misses, hits = cache.misses, cache.hits
    await reads(catalog.stub, product)

    assert cache.misses == misses
    assert cache.hits == hits + 4


async def test_after_an_update_the_next_read_shows_the_new_price_everywhere(catalog):
    category = await catalog.category()
    product = await catalog.product(category, name="Desk Lamp", price_minor=1999)
    await reads(catalog.stub, product)
    await reads(catalog.stub, product)  # now every path is cached

    await catalog.stub.UpdateProduct(
        catalog_pb2.UpdateProductRequest(
            product_id=product.id, price=money_pb2.Money(amount_minor=2599, currency="USD")
        ),
        metadata=catalog.admin,
    )

    assert await reads(catalog.stub, product) == {"get": 2599, "batch": 2599, "list": 2599, "search": 2599}


async def test_a_reservation_and_a_stock_adjustment_are_visible_on_the_next_read(catalog):
    category = await catalog.category()
    product = await catalog.product(category, stock=9)
    request = catalog_pb2.GetProductRequest(product_id=product.id)
    await catalog.stub.GetProduct(request)

    await catalog.stub.AdjustStock(
        catalog_pb2.AdjustStockRequest(product_id=product.id, delta=-2), metadata=catalog.admin
    )
    adjusted = (await catalog.stub.GetProduct(request)).product.stock
    order = "5d0f6a39-5c1e-4a8c-9a55-0b9f3c1d2e4f"
    await catalog.handle(RESERVE, reserve_command(order, [(product.id, 3)]), order)

    async def reserved_visible() -> bool:
        return (await catalog.stub.GetProduct(request)).product.stock == 4

    await eventually(reserved_visible, what="the reservation visible through the cache")
    assert adjusted == 7


async def test_a_reservation_moves_only_its_products_entries_and_the_pages(catalog):
    """Checkouts change stock all the time: the products they touch are read again, every other
    product's entry stays a hit, and list pages (which show many products' stock) are read again."""
    category = await catalog.category()
    sold = await catalog.product(category, name="Desk Lamp", stock=9)
    other = await catalog.product(category, name="Floor Lamp", stock=5)
    cache = catalog.app.cache
    for product in (sold, other):
        await catalog.stub.GetProduct(catalog_pb2.GetProductRequest(product_id=product.id))
    listed = await catalog.stub.ListProducts(catalog_pb2.ListProductsRequest())
    assert {p.id: p.stock for p in listed.products} == {sold.id: 9, other.id: 5}

    order = "7a2e8c5b-7e3a-4cae-9c77-2d1b5e3f4061"
    await catalog.handle(RESERVE, reserve_command(order, [(sold.id, 4)]), order)

    async def reserved_visible() -> bool:
        got = await catalog.stub.GetProduct(catalog_pb2.GetProductRequest(product_id=sold.id))
        return got.product.stock == 5

    await eventually(reserved_visible, what="the reservation visible through the cache")
    misses, hits = cache.misses, cache.hits
    got = await catalog.stub.GetProduct(catalog_pb2.GetProductRequest(product_id=other.id))
    assert (got.product.stock, cache.misses, cache.hits) == (5, misses, hits + 1)

    listed = await catalog.stub.ListProducts(catalog_pb2.ListProductsRequest())
    assert {p.id: p.stock for p in listed.products} == {sold.id: 5, other.id: 5}
    assert cache.misses == misses + 1  # the page, read again


async def test_with_redis_stopped_reads_and_writes_still_succeed_and_a_warning_is_logged(
    catalog, data_dir: Path, caplog
):
    redis = await asyncio.to_thread(EmbeddedRedis(data_dir / "catalog-cache-outage").start)
    settings = catalog.settings.model_copy(update={"redis_url": redis.url, "grpc_port": 0})
    app = build(settings, jwks=catalog.jwks)
    running = await app.start(background=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    stub = catalog_pb2_grpc.CatalogServiceStub(channel)
    try:
        category = await catalog.category()
        product = await catalog.product(category, name="Desk Lamp", price_minor=1999)
        await reads(stub, product)
        assert app.cache.failures == 0

        await asyncio.to_thread(redis.stop)
        with caplog.at_level(logging.WARNING, logger="catalog.cache"):
            during = await reads(stub, product)
            categories = await stub.ListCategories(catalog_pb2.ListCategoriesRequest())
            adjusted = await stub.AdjustStock(
                catalog_pb2.AdjustStockRequest(product_id=product.id, delta=5), metadata=catalog.admin
            )

        assert during == {"get": 1999, "batch": 1999, "list": 1999, "search": 1999}
        assert [c.slug for c in categories.categories] == [category.slug]
        assert adjusted.product.stock == product.stock + 5
        assert app.cache.failures > 0
        assert any("cache unavailable" in r.getMessage() for r in caplog.records)

        await asyncio.to_thread(redis.start)
        hits = app.cache.hits
        await reads(stub, product)
        await reads(stub, product)
        assert app.cache.hits > hits
    finally:
        await channel.close()
        await app.stop(running)
        await asyncio.to_thread(redis.stop)


async def test_a_flushed_redis_never_brings_back_a_version_this_process_still_holds(catalog):
    """Each process keeps entries it decoded under their versioned key. Were the version to count
    from zero again after Redis lost it, an old key, and the stale entry this process holds under
    it, would come back."""
    cache = catalog.app.cache
    redis = catalog.app.runtime.redis
    await cache.invalidate()  # a write: the version moves on once
    held = await cache.version()
    key = cache.key(held, "product", "p-1")
    await cache.set_decoded({key: (b'"stale"', "stale")}, weigh=lambda _: 1)
    assert await cache.get_decoded([key], bytes.decode, weigh=lambda _: 1) == ["stale"]

    await redis.flushdb()  # Redis restarted empty, or was flushed
    await cache.invalidate()  # another replica's write
    current = await cache.version()

    assert current != held
    assert await cache.get_decoded(
        [cache.key(current, "product", "p-1")], bytes.decode, weigh=lambda _: 1
    ) == [None]


async def test_a_lost_stock_version_never_brings_back_an_entry_this_process_still_holds(catalog):
    """Redis may lose the hash of stock versions alone (evicted under memory pressure) while the
    content version stays: the product's stock version then starts anew from a random number, not
    from one it had before."""
    cache = catalog.app.cache
    redis = catalog.app.runtime.redis
    product = "5b9c1d2e-3f40-4a51-8b62-7c83d94ea5f6"
    await cache.invalidate(changefeed.stock_changed([product], availability=False))
    (held,) = await cache.product_versions([product])
    key = cache.key(held, "product", product)
    await cache.set_decoded({key: (b'"stale"', "stale")}, weigh=lambda _: 1)
    assert await cache.get_decoded([key], bytes.decode, weigh=lambda _: 1) == ["stale"]

    await redis.delete(cache.stock_versions_key)
    await cache.invalidate(changefeed.stock_changed([product], availability=False))  # another replica
    (current,) = await cache.product_versions([product])

    assert current != held
    assert current.split(".")[0] == held.split(".")[0]  # the content version did not move
    assert await cache.get_decoded(
        [cache.key(current, "product", product)], bytes.decode, weigh=lambda _: 1
    ) == [None]


async def test_memory_keeps_an_entry_no_longer_than_redis_does(catalog):
    cache = catalog.app.cache
    redis = catalog.app.runtime.redis
    key = cache.key(await cache.version(), "product", "p-2")
    await redis.set(key, b'"short-lived"', px=300)

    assert await cache.get_decoded([key], bytes.decode, weigh=lambda _: 1) == ['"short-lived"']

    async def gone() -> bool:
        return await cache.get_decoded([key], bytes.decode, weigh=lambda _: 1) == [None]

    await eventually(gone, timeout=5, what="the entry to leave memory with its Redis TTL")


# -- the change feed the gateways read (servicekit.changefeed) ------------------------------------------


async def feed(catalog, since: bytes) -> list[Change]:
    """The changes published after the stream entry `since`."""
    entries = await catalog.app.cache.redis.xrange(changefeed.STREAM, min=b"(" + since)
    return [change for _, fields in entries if (change := Change.parse(fields)) is not None]


async def newest(catalog) -> bytes:
    entries = await catalog.app.cache.redis.xrevrange(changefeed.STREAM, count=1)
    return entries[0][0] if entries else b"0-0"


async def test_every_write_publishes_what_changed_in_order(catalog):
    category = await catalog.category()
    product = await catalog.product(category, stock=1)
    since = await newest(catalog)

    await catalog.stub.UpdateProduct(
        catalog_pb2.UpdateProductRequest(product_id=product.id, name="Brass Lamp"), metadata=catalog.admin
    )
    await catalog.stub.AdjustStock(
        catalog_pb2.AdjustStockRequest(product_id=product.id, delta=2), metadata=catalog.admin
    )
    order = "6e1f7b4a-6d2f-4b9d-8b66-1c0a4d2e3f50"
    await catalog.handle(RESERVE, reserve_command(order, [(product.id, 3)]), order)  # sells out

    async def published() -> list[Change]:
        changes = await feed(catalog, since)
        return changes if len(changes) == 3 else []

    content, adjusted, reserved = await eventually(published, what="three changes on the feed")
    assert (content.kind, content.product_ids) == (changefeed.CONTENT, ())
    assert (adjusted.kind, adjusted.product_ids, adjusted.availability) == ("stock", (product.id,), False)
    assert (reserved.kind, reserved.product_ids, reserved.availability) == ("stock", (product.id,), True)
    assert reserved.seq == adjusted.seq + 1 == content.seq + 2
