"""The catalog's read models: what its use cases return, and how the cache stores them."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import orjson

from catalog.models import Category, Product, ProductImage, ProductVariant

log = logging.getLogger(__name__)
T = TypeVar("T")


class Line(NamedTuple):
    """One line of an order's reservation: a product's variant and a quantity."""

    product_id: str
    quantity: int
    variant_id: str = ""


@dataclass(frozen=True)
class CategoryView:
    id: str
    slug: str
    name: str
    # Active products; 0 where the category is embedded in a product.
    product_count: int = 0


@dataclass(frozen=True)
class OptionGroupView:
    name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class VariantView:
    id: str
    sku: str
    name: str
    # (group, value) pairs in the order of the product's groups.
    options: tuple[tuple[str, str], ...]
    # Its own price, or the product's.
    price_minor: int
    stock: int
    # Its own threshold, or the product's.
    low_stock_threshold: int
    product_id: str = ""

    @classmethod
    def of(cls, variant: ProductVariant, product: Product) -> VariantView:
        return cls(
            product_id=str(product.id),
            id=str(variant.id),
            sku=variant.sku,
            name=variant.name,
            options=tuple((o["group"], o["value"]) for o in variant.options),
            price_minor=product.price_minor if variant.price_minor is None else variant.price_minor,
            stock=variant.stock,
            low_stock_threshold=(
                product.low_stock_threshold
                if variant.low_stock_threshold is None
                else variant.low_stock_threshold
            ),
        )


@dataclass(frozen=True)
class ImageView:
    url: str
    alt: str
    position: int

    @classmethod
    def of(cls, image: ProductImage) -> ImageView:
        return cls(url=image.url, alt=image.alt, position=image.position)


@dataclass(frozen=True)
class ProductView:
    id: str
    sku: str
    name: str
    description: str
    price_minor: int
    currency: str
    category: CategoryView
    stock: int
    featured: bool
    archived: bool
    low_stock_threshold: int
    created_at: datetime
    updated_at: datetime
    option_groups: tuple[OptionGroupView, ...] = ()
    variants: tuple[VariantView, ...] = ()
    images: tuple[ImageView, ...] = ()

    @property
    def price_range(self) -> tuple[int, int]:
        """The lowest and highest price of its variants (the product's price when it has none)."""
        prices = [v.price_minor for v in self.variants] or [self.price_minor]
        return min(prices), max(prices)

    @classmethod
    def of(
        cls,
        product: Product,
        category: Category,
        variants: list[ProductVariant] | None = None,
        images: list[ProductImage] | None = None,
    ) -> ProductView:
        views = tuple(VariantView.of(v, product) for v in variants or ())
        return cls(
            id=str(product.id),
            sku=product.sku,
            name=product.name,
            description=product.description,
            price_minor=product.price_minor,
            currency=product.currency,
            category=CategoryView(id=str(category.id), slug=category.slug, name=category.name),
            stock=sum(v.stock for v in views),
            featured=product.featured,
            archived=product.archived_at is not None,
            low_stock_threshold=product.low_stock_threshold,
            created_at=product.created_at,
            updated_at=product.updated_at,
            option_groups=tuple(
                OptionGroupView(g["name"], tuple(g["values"])) for g in product.option_groups
            ),
            variants=views,
            images=tuple(ImageView.of(i) for i in images or ()),
        )

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes) -> ProductView:
        return cls.from_dict(orjson.loads(raw))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ProductView:
        return cls(
            **{
                **values,
                "category": CategoryView(**values["category"]),
                "option_groups": tuple(
                    OptionGroupView(g["name"], tuple(g["values"])) for g in values["option_groups"]
                ),
                "variants": tuple(
                    VariantView(**{**v, "options": tuple(tuple(o) for o in v["options"])})
                    for v in values["variants"]
                ),
                "images": tuple(ImageView(**i) for i in values["images"]),
                "created_at": datetime.fromisoformat(values["created_at"]),
                "updated_at": datetime.fromisoformat(values["updated_at"]),
            }
        )


@dataclass(frozen=True)
class ProductPage:
    products: list[ProductView]
    # cursors[i] resumes right after products[i].
    cursors: list[str]
    has_next_page: bool
    total_count: int

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes) -> ProductPage:
        values = orjson.loads(raw)
        return cls(
            products=[ProductView.from_dict(p) for p in values["products"]],
            cursors=values["cursors"],
            has_next_page=values["has_next_page"],
            total_count=values["total_count"],
        )


@dataclass(frozen=True)
class InventoryView:
    """One variant's units: on hand = available + reserved."""

    variant_id: str
    product_id: str
    sku: str
    on_hand: int
    reserved: int
    available: int
    low_stock_threshold: int


@dataclass(frozen=True)
class LowStockPage:
    # (the product's name, the variant)
    variants: list[tuple[str, VariantView]]
    cursors: list[str]
    has_next_page: bool
    total_count: int


@dataclass(frozen=True)
class StockLevel:
    product_id: str
    available: int
    reserved: int
    low_stock_threshold: int


@dataclass(frozen=True)
class StockMove:
    """One variant's stock before and after a change, and what a stock_low alert names."""

    product_id: str
    variant_id: str
    sku: str
    name: str
    variant_name: str
    old: int
    new: int
    threshold: int


@dataclass(frozen=True)
class RejectedLine:
    """A line of a refused reservation, and why (INSUFFICIENT_STOCK, PRODUCT_NOT_FOUND, ...)."""

    product_id: str
    requested: int
    available: int
    reason: str
    variant_id: str = ""


def _categories_from_json(raw: bytes) -> list[CategoryView]:
    return [CategoryView(**values) for values in orjson.loads(raw)]


def _decoded(decode: Callable[[bytes], T], raw: bytes) -> T | None:
    """A cached entry, or None (a miss) when it no longer decodes, e.g. written by an older release."""
    try:
        return decode(raw)
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring an unreadable cache entry: %s", exc)
        return None


read_product = functools.partial(_decoded, ProductView.from_json)
read_page = functools.partial(_decoded, ProductPage.from_json)
read_categories = functools.partial(_decoded, _categories_from_json)


def weight(entry: object) -> int:
    """What a decoded entry weighs in the cache's memory, in products."""
    return len(entry.products) + 1 if isinstance(entry, ProductPage) else 1
