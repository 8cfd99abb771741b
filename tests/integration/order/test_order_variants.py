"""CreateOrder with product variants: a line names its variant, or a product's only one is meant;
the variant's SKU and price are ordered and the reserve command names it."""

from __future__ import annotations

import uuid

import grpc
import pytest

from ecommerce.catalog.v1 import catalog_pb2
from ecommerce.common.v1 import money_pb2
from ecommerce.events.v1 import envelope_pb2, inventory_events_pb2
from ecommerce.order.v1 import order_pb2
from servicekit.kafka import unpack
from tests.integration.order.helpers import create_request, rpc_error

pytestmark = pytest.mark.usefixtures("orders")


def shirt(orders, *prices: int) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    """A product with one variant per price in the stand-in catalog: its id and its variants' ids."""
    product_id = orders.catalog.add(price_minor=prices[0], name="Tee")
    variant_ids = [str(uuid.uuid4()) for _ in prices]
    orders.catalog.products[product_id].variants.extend(
        catalog_pb2.ProductVariant(
            id=vid,
            sku=f"TEE-{i}",
            name=["S / Red", "XL / Blue", "M / Red"][i],
            price=money_pb2.Money(amount_minor=price, currency="EUR"),
            stock=5,
            product_id=product_id,
        )
        for i, (vid, price) in enumerate(zip(variant_ids, prices, strict=True))
    )
    return product_id, variant_ids


def with_variants(
    request: order_pb2.CreateOrderRequest, variant_ids: list[str]
) -> order_pb2.CreateOrderRequest:
    for item, vid in zip(request.items, variant_ids, strict=True):
        item.variant_id = vid
    return request


async def nothing_written(orders) -> bool:  # type: ignore[no-untyped-def]
    return await orders.scalar("SELECT count(*) FROM orders") == 0


async def test_each_line_is_priced_by_its_variant_and_the_reserve_command_names_it(orders):
    product, (small, large) = shirt(orders, 2000, 2400)
    _, metadata = orders.token()

    response = await orders.stub.CreateOrder(
        with_variants(create_request([(product, 2), (product, 1)]), [small, large]), metadata=metadata
    )

    items = response.order.items
    assert [(i.variant_id, i.sku, i.name, i.unit_price.amount_minor, i.quantity) for i in items] == [
        (small, "TEE-0", "Tee (S / Red)", 2000, 2),
        (large, "TEE-1", "Tee (XL / Blue)", 2400, 1),
    ]
    assert response.order.total.amount_minor == 6400
    [(raw,)] = await orders.execute(
        "SELECT payload FROM outbox WHERE event_type = 'inventory.reserve_stock' AND key = :id",
        id=response.order.id,
    )
    command = unpack(envelope_pb2.EventEnvelope.FromString(raw), inventory_events_pb2.ReserveStock)
    assert sorted((line.product_id, line.variant_id, line.quantity) for line in command.lines) == sorted(
        [(product, small, 2), (product, large, 1)]
    )


async def test_a_product_with_one_variant_is_still_ordered_by_product_id_alone(orders):
    product, (only,) = shirt(orders, 1500)
    _, metadata = orders.token()

    response = await orders.stub.CreateOrder(create_request([(product, 3)]), metadata=metadata)

    [item] = response.order.items
    assert (item.variant_id, item.sku, item.name, item.unit_price.amount_minor) == (
        only,
        "TEE-0",
        "Tee",
        1500,
    )


async def test_a_line_without_a_variant_of_a_product_with_several_names_variant_id(orders):
    product, _ = shirt(orders, 2000, 2400)
    _, metadata = orders.token()

    code, fields = await rpc_error(orders.stub.CreateOrder(create_request([(product, 1)]), metadata=metadata))

    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["items[0].variant_id"])
    assert await nothing_written(orders)


@pytest.mark.parametrize("variant", ["foreign", "not-a-uuid", str(uuid.uuid4()), "' OR 1=1 --"])
async def test_a_variant_that_is_not_the_products_is_refused(orders, variant):
    product, _ = shirt(orders, 2000, 2400)
    _, (foreign,) = shirt(orders, 999)
    _, metadata = orders.token()
    variant = foreign if variant == "foreign" else variant

    code, fields = await rpc_error(
        orders.stub.CreateOrder(with_variants(create_request([(product, 1)]), [variant]), metadata=metadata)
    )

    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["items[0].variant_id"])
    assert await nothing_written(orders)
