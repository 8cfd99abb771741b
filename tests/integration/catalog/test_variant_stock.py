"""Stock per variant: reservations name a variant (or a product's only one), never oversell it,
expire per variant; inventory and the low-stock listing read it; stock_low fires once per crossing."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from ecommerce.catalog.v1 import catalog_pb2
from ecommerce.events.v1 import catalog_events_pb2, envelope_pb2, inventory_events_pb2
from tests.helpers import eventually
from tests.integration.catalog.commands import RESERVE, payload
from tests.integration.catalog.variant_calls import rpc_error, shirt_request, violated

pytestmark = pytest.mark.usefixtures("clean_catalog")


def reserve(order_id: str, lines: list[tuple[str, int, str]]) -> inventory_events_pb2.ReserveStock:
    return inventory_events_pb2.ReserveStock(
        order_id=order_id,
        lines=[inventory_events_pb2.StockLine(product_id=p, quantity=q, variant_id=v) for p, q, v in lines],
    )


async def shirt(catalog):  # type: ignore[no-untyped-def]
    category = await catalog.category()
    return (await catalog.stub.CreateProduct(shirt_request(category.slug), metadata=catalog.admin)).product


async def test_a_line_without_a_variant_of_a_product_with_several_is_rejected_as_variant_required(catalog):
    product = await shirt(catalog)
    order = str(uuid.uuid4())

    await catalog.handle(RESERVE, reserve(order, [(product.id, 1, "")]), order)

    [answer] = await catalog.answers(order)
    refusal = payload(answer)
    assert [(line.product_id, line.reason) for line in refusal.lines] == [
        (product.id, inventory_events_pb2.STOCK_REJECTION_REASON_VARIANT_REQUIRED)
    ]
    assert await catalog.stock(product.id) == 13


async def test_a_variant_of_another_product_is_rejected_as_not_found(catalog):
    product = await shirt(catalog)
    lamp = await catalog.product(await catalog.category())
    order = str(uuid.uuid4())

    await catalog.handle(RESERVE, reserve(order, [(lamp.id, 1, product.variants[0].id)]), order)

    refusal = payload((await catalog.answers(order))[0])
    assert [line.reason for line in refusal.lines] == [
        inventory_events_pb2.STOCK_REJECTION_REASON_VARIANT_NOT_FOUND
    ]


async def test_concurrent_orders_for_one_variant_never_oversell_it_nor_touch_its_sibling(catalog):
    product = await shirt(catalog)
    small, large = product.variants  # 4 and 9 units
    orders = [str(uuid.uuid4()) for _ in range(30)]

    await asyncio.gather(
        *(catalog.handle(RESERVE, reserve(o, [(product.id, 1, small.id)]), o) for o in orders)
    )

    kinds = [[r.event_type for r in await catalog.answers(o)] for o in orders]
    assert kinds.count(["inventory.stock_reserved"]) == 4
    assert kinds.count(["inventory.stock_rejected"]) == 26
    assert (await catalog.stock(small.id), await catalog.stock(large.id)) == (0, 9)
    reserved = next(o for o, k in zip(orders, kinds, strict=True) if k == ["inventory.stock_reserved"])
    [line] = payload((await catalog.answers(reserved))[0]).lines
    assert (line.product_id, line.variant_id, line.quantity) == (product.id, small.id, 1)


async def test_an_expired_reservation_gives_its_units_back_to_its_variant(catalog):
    product = await shirt(catalog)
    small, large = product.variants
    order = str(uuid.uuid4())
    await catalog.handle(
        RESERVE, reserve(order, [(product.id, 3, large.id), (product.id, 1, small.id)]), order
    )
    assert (await catalog.stock(small.id), await catalog.stock(large.id)) == (3, 6)

    await catalog.execute(
        "UPDATE stock_orders SET expires_at = now() - interval '1 second' WHERE order_id = :id",
        id=uuid.UUID(order),
    )

    async def restored() -> bool:
        return (await catalog.stock(small.id), await catalog.stock(large.id)) == (4, 9)

    await eventually(restored, what="the expired units back in their variants")
    expired = payload((await catalog.answers(order))[-1])
    assert sorted((line.variant_id, line.quantity) for line in expired.lines) == sorted(
        [(small.id, 1), (large.id, 3)]
    )


async def test_inventory_shows_on_hand_reserved_and_available_of_a_variant(catalog):
    product = await shirt(catalog)
    large = product.variants[1]
    order = str(uuid.uuid4())
    await catalog.handle(RESERVE, reserve(order, [(product.id, 2, large.id)]), order)

    inventory = (
        await catalog.stub.GetInventory(
            catalog_pb2.GetInventoryRequest(variant_id=large.id), metadata=catalog.admin
        )
    ).inventory

    assert (inventory.on_hand, inventory.reserved, inventory.available, inventory.sku) == (9, 2, 7, large.sku)
    missing = await rpc_error(
        catalog.stub.GetInventory(
            catalog_pb2.GetInventoryRequest(variant_id=str(uuid.uuid4())), metadata=catalog.admin
        )
    )
    malformed = await rpc_error(
        catalog.stub.GetInventory(
            catalog_pb2.GetInventoryRequest(variant_id="x' OR 1=1"), metadata=catalog.admin
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert (malformed.code(), violated(malformed)) == (grpc.StatusCode.INVALID_ARGUMENT, ["variant_id"])


async def test_adjusting_a_product_with_several_variants_needs_the_variant(catalog):
    product = await shirt(catalog)
    small = product.variants[0]

    error = await rpc_error(
        catalog.stub.AdjustStock(
            catalog_pb2.AdjustStockRequest(product_id=product.id, delta=1), metadata=catalog.admin
        )
    )
    adjusted = await catalog.stub.AdjustStock(
        catalog_pb2.AdjustStockRequest(product_id=product.id, delta=2, variant_id=small.id),
        metadata=catalog.admin,
    )

    assert (error.code(), violated(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["variant_id"])
    assert [v.stock for v in adjusted.product.variants] == [6, 9]
    assert adjusted.product.stock == 15


async def test_stock_low_is_published_once_per_crossing_of_a_variants_threshold(catalog):
    category = await catalog.category()
    request = shirt_request(category.slug, low_stock_threshold=3)
    product = (await catalog.stub.CreateProduct(request, metadata=catalog.admin)).product
    small = product.variants[0]  # 4 units, threshold 3 from the product

    async def adjust(delta: int) -> None:
        await catalog.stub.AdjustStock(
            catalog_pb2.AdjustStockRequest(product_id=product.id, delta=delta, variant_id=small.id),
            metadata=catalog.admin,
        )

    for delta in (-1, -1, 5, -6):  # 4 -> 3 (crosses) -> 2 -> 7 -> 1 (crosses again)
        await adjust(delta)

    rows = await catalog.execute(
        "SELECT payload FROM outbox WHERE event_type = 'catalog.stock_low' AND key = :key ORDER BY id",
        key=product.id,
    )
    alerts = [catalog_events_pb2.StockLow() for _ in rows]
    for alert, (raw,) in zip(alerts, rows, strict=True):
        assert envelope_pb2.EventEnvelope.FromString(raw).payload.Unpack(alert)
    assert [(a.variant_id, a.sku, a.stock, a.low_stock_threshold) for a in alerts] == [
        (small.id, small.sku, 3, 3),
        (small.id, small.sku, 1, 3),
    ]
    assert alerts[0].variant_name == "S / Red"


async def test_low_stock_lists_variants_at_or_under_their_threshold_lowest_first(catalog):
    category = await catalog.category()
    product = (
        await catalog.stub.CreateProduct(
            shirt_request(category.slug, low_stock_threshold=5), metadata=catalog.admin
        )
    ).product
    small, large = product.variants  # 4 (under 5) and 9
    lamp = await catalog.product(category, stock=2, low_stock_threshold=2)
    await catalog.product(category, stock=0, low_stock_threshold=0)  # alerts off: never listed

    first = await catalog.stub.ListLowStock(
        catalog_pb2.ListLowStockRequest(page_size=1), metadata=catalog.admin
    )
    rest = await catalog.stub.ListLowStock(
        catalog_pb2.ListLowStockRequest(page_size=1, page_token=first.cursors[0]), metadata=catalog.admin
    )

    assert (first.total_count, first.has_next_page, rest.has_next_page) == (2, True, False)
    assert [(v.variant.id, v.variant.stock) for v in [*first.variants, *rest.variants]] == [
        (lamp.variants[0].id, 2),
        (small.id, 4),
    ]
    assert rest.variants[0].product_name == "Organic Cotton Tee"
    forged = await rpc_error(
        catalog.stub.ListLowStock(
            catalog_pb2.ListLowStockRequest(page_token="forged"), metadata=catalog.admin
        )
    )
    assert (forged.code(), violated(forged)) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])
    assert large.id not in {v.variant.id for v in [*first.variants, *rest.variants]}
