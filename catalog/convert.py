"""The catalog's read models as protobuf messages, for the gRPC API and the events alike."""

from __future__ import annotations

from dataclasses import asdict

from catalog.views import CategoryView, InventoryView, ProductView, VariantView
from ecommerce.catalog.v1 import catalog_pb2
from servicekit import money
from servicekit.timestamps import to_timestamp


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


def variant_to_proto(variant: VariantView, currency: str) -> catalog_pb2.ProductVariant:
    return catalog_pb2.ProductVariant(
        id=variant.id,
        sku=variant.sku,
        name=variant.name,
        options=[catalog_pb2.VariantOption(group=g, value=v) for g, v in variant.options],
        price=money.to_proto(variant.price_minor, currency),
        stock=variant.stock,
        low_stock_threshold=variant.low_stock_threshold,
        product_id=variant.product_id,
    )


def inventory_to_proto(inventory: InventoryView) -> catalog_pb2.Inventory:
    return catalog_pb2.Inventory(**asdict(inventory))


def _product_message(product: ProductView) -> catalog_pb2.Product:
    low, high = product.price_range
    return catalog_pb2.Product(
        id=product.id,
        sku=product.sku,
        name=product.name,
        description=product.description,
        price=money.to_proto(product.price_minor, product.currency),
        category=category_to_proto(product.category),
        stock=product.stock,
        featured=product.featured,
        archived=product.archived,
        low_stock_threshold=product.low_stock_threshold,
        created_at=to_timestamp(product.created_at),
        updated_at=to_timestamp(product.updated_at),
        variants=[variant_to_proto(v, product.currency) for v in product.variants],
        option_groups=[catalog_pb2.OptionGroup(name=g.name, values=g.values) for g in product.option_groups],
        images=[catalog_pb2.ProductImage(url=i.url, alt=i.alt, position=i.position) for i in product.images],
        min_price=money.to_proto(low, product.currency),
        max_price=money.to_proto(high, product.currency),
    )
