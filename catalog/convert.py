"""The catalog's read models as protobuf messages, for the gRPC API and the events alike."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from google.protobuf import timestamp_pb2

from ecommerce.catalog.v1 import catalog_pb2
from ecommerce.common.v1 import money_pb2

if TYPE_CHECKING:
    from catalog.service import CategoryView, ProductView


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def category_to_proto(category: CategoryView) -> catalog_pb2.Category:
    return catalog_pb2.Category(
        id=category.id, slug=category.slug, name=category.name, product_count=category.product_count
    )


def product_to_proto(product: ProductView) -> catalog_pb2.Product:
    return catalog_pb2.Product(
        id=product.id,
        sku=product.sku,
        name=product.name,
        description=product.description,
        price=money_pb2.Money(amount_minor=product.price_minor, currency=product.currency),
        category=category_to_proto(product.category),
        stock=product.stock,
        featured=product.featured,
        archived=product.archived,
        low_stock_threshold=product.low_stock_threshold,
        created_at=timestamp(product.created_at),
        updated_at=timestamp(product.updated_at),
    )
