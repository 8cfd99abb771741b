"""The catalog's read models: what its use cases return, and how the cache stores them."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson

from catalog.models import Category, Product

log = logging.getLogger(__name__)
T = TypeVar("T")

# A product id and a quantity: one line of an order's reservation.
Line = tuple[str, int]


@dataclass(frozen=True)
class CategoryView:
    id: str
    slug: str
    name: str
    # Active products; 0 where the category is embedded in a product.
    product_count: int = 0


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

    @classmethod
    def of(cls, product: Product, category: Category) -> ProductView:
        return cls(
            id=str(product.id),
            sku=product.sku,
            name=product.name,
            description=product.description,
            price_minor=product.price_minor,
            currency=product.currency,
            category=CategoryView(id=str(category.id), slug=category.slug, name=category.name),
            stock=product.stock,
            featured=product.featured,
            archived=product.archived_at is not None,
            low_stock_threshold=product.low_stock_threshold,
            created_at=product.created_at,
            updated_at=product.updated_at,
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
class StockLevel:
    product_id: str
    available: int
    reserved: int
    low_stock_threshold: int


@dataclass(frozen=True)
class RejectedLine:
    """A line of a refused reservation, and why (INSUFFICIENT_STOCK, PRODUCT_NOT_FOUND, ...)."""

    product_id: str
    requested: int
    available: int
    reason: str


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
