"""The catalog's read models as protobuf messages: a product's message is built once and never
changed by the responses that carry it."""

from __future__ import annotations

from datetime import UTC, datetime

from catalog.convert import product_to_proto
from catalog.views import CategoryView, ProductView
from ecommerce.catalog.v1 import catalog_pb2


def _view(stock: int = 5) -> ProductView:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return ProductView(
        id="7c1e4c52-64a4-4d4b-9a53-1c1f0bb0e0a1",
        sku="LAMP-1",
        name="Lamp",
        description="A lamp.",
        price_minor=1999,
        currency="EUR",
        category=CategoryView(id="0b8f3c8e-4d35-4d59-a7a4-5d3e0e3f3d11", slug="home", name="Home"),
        stock=stock,
        featured=True,
        archived=False,
        low_stock_threshold=2,
        created_at=now,
        updated_at=now,
    )


def test_a_products_message_is_built_once_and_the_responses_carrying_it_copy_it() -> None:
    view = _view()
    message = product_to_proto(view)

    assert product_to_proto(view) is message
    assert (message.sku, message.stock, message.price.amount_minor) == ("LAMP-1", 5, 1999)
    page = catalog_pb2.ListProductsResponse(products=[message, message])
    page.products[0].stock = 0
    single = catalog_pb2.GetProductResponse(product=message)
    single.product.name = "changed"
    assert (message.stock, message.name) == (5, "Lamp")
    # Another view (a later version of the product) has its own message.
    assert product_to_proto(_view(stock=4)).stock == 4
    assert _view() == view  # the remembered message is not part of the view's value
