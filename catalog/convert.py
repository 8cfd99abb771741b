"""The catalog's read models as protobuf messages, for the gRPC API and the events alike."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from catalog.views import CategoryView, ProductView
from ecommerce.catalog.v1 import catalog_pb2
from ecommerce.common.v1 import money_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A datetime (naive ones are UTC) as a protobuf timestamp, to the microsecond.

    Computed from the difference to the epoch: `Timestamp.FromDatetime` goes through
    `calendar.timegm` and costs three times as much, twice per product of every page."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    since = value - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1_000
    )


def category_to_proto(category: CategoryView) -> catalog_pb2.Category:
    return catalog_pb2.Category(
        id=category.id, slug=category.slug, name=category.name, product_count=category.product_count
    )


_MESSAGE = "_message"


def product_to_proto(product: ProductView) -> catalog_pb2.Product:
    """The product as a message, built once per view.

    Views are immutable and the cache hands the same ones to every request, so a page of twenty
    is copied from ready messages instead of built again (180 us -> 15 us). The message is shared:
    callers pass it to a constructor or a repeated field, which copy it, and never change it."""
    message = product.__dict__.get(_MESSAGE)
    if message is None:
        message = _product_message(product)
        product.__dict__[_MESSAGE] = message  # a frozen dataclass: as functools.cached_property does
    return message


def _product_message(product: ProductView) -> catalog_pb2.Product:
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
