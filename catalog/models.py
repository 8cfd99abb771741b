from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from servicekit.db import new_metadata
from servicekit.inbox import inbox_table
from servicekit.outbox import outbox_table

# Name weighs above description, and both above the variants' SKUs and option values;
# English stemming ("headphone" finds "Headphones").
SEARCH_VECTOR = (
    "setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(variant_terms, '')), 'C')"
)

RESERVED = "RESERVED"
REJECTED = "REJECTED"
RELEASED = "RELEASED"
COMMITTED = "COMMITTED"
EXPIRED = "EXPIRED"


class Base(DeclarativeBase):
    metadata = new_metadata()


class Category(Base):
    __tablename__ = "categories"
    __table_args__ = (CheckConstraint("slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'", name="slug_format"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price_minor > 0", name="price_positive"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        CheckConstraint("low_stock_threshold >= 0", name="low_stock_threshold_not_negative"),
        # Search: the weighted vector for full text, trigrams on the name for prefixes and typos.
        Index("ix_products_search_vector", "search_vector", postgresql_using="gin"),
        Index(
            "ix_products_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}
        ),
        # Keyset pagination: one b-tree per sort, the id as tie-breaker.
        Index("ix_products_created_at_id", "created_at", "id"),
        Index("ix_products_price_minor_id", "price_minor", "id"),
        Index("ix_products_lower_name_id", text("lower(name)"), "id"),
        # Browsing one category newest first; also serves every lookup by category.
        Index("ix_products_category_id_created_at_id", "category_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    sku: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    # The price of every variant that has none of its own.
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(CHAR(3))
    category_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("categories.id"))
    # The threshold of every variant that has none of its own.
    low_stock_threshold: Mapped[int] = mapped_column(Integer, server_default="0")
    # [{"name": "Size", "values": ["S", "M"]}, ...]: what its variants' options may name.
    option_groups: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    # Its variants' SKUs and option values, kept by the service for the search vector.
    variant_terms: Mapped[str] = mapped_column(Text, server_default="")
    featured: Mapped[bool] = mapped_column(Boolean, server_default="false")
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Written by PostgreSQL, read only by PostgreSQL: never loaded into Python.
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR, Computed(SEARCH_VECTOR, persisted=True), deferred=True
    )


class ProductVariant(Base):
    """What is actually bought: its own SKU, options, price and stock."""

    __tablename__ = "product_variants"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price_minor > 0", name="price_positive"),
        CheckConstraint("low_stock_threshold >= 0", name="low_stock_threshold_not_negative"),
        # One active variant per combination of options within a product.
        Index(
            "uq_product_variants_product_id_options_key",
            "product_id",
            "options_key",
            unique=True,
            postgresql_where=text("archived_at IS NULL"),
        ),
        Index("ix_product_variants_product_id_position", "product_id", "position"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("products.id", ondelete="CASCADE"))
    # Unique across the catalog: no other variant, and no other product, has it.
    sku: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    # [{"group": "Size", "value": "M"}, ...] in the order of the product's groups.
    options: Mapped[list[dict[str, str]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    # The options as one canonical string ("colour=red|size=m"), for the uniqueness above.
    options_key: Mapped[str] = mapped_column(Text, server_default="")
    # None: the product's price.
    price_minor: Mapped[int | None] = mapped_column(BigInteger)
    # Units that can still be bought: on hand minus what active reservations hold.
    stock: Mapped[int] = mapped_column(Integer, server_default="0")
    # None: the product's threshold.
    low_stock_threshold: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, server_default="0")
    # A deleted variant is archived: orders that hold it keep it.
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ProductImage(Base):
    __tablename__ = "product_images"
    __table_args__ = (CheckConstraint("position >= 0", name="position_not_negative"),)

    product_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    alt: Mapped[str] = mapped_column(Text, server_default="")


class StockOrder(Base):
    """One order's reservation as a whole: the row every command for that order locks first,
    and the memory of its first outcome, so a repeated command answers the same."""

    __tablename__ = "stock_orders"
    __table_args__ = (
        CheckConstraint(
            "status IN ('RESERVED', 'REJECTED', 'RELEASED', 'COMMITTED', 'EXPIRED')", name="status_known"
        ),
        # The sweeper's scan: active reservations by expiry.
        Index("ix_stock_orders_expiring", "expires_at", postgresql_where=text("status = 'RESERVED'")),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    status: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The StockRejected payload of a rejected order, replayed for a repeated ReserveStock.
    rejection: Mapped[bytes | None] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Reservation(Base):
    """One line of an order's reservation."""

    __tablename__ = "reservations"
    __table_args__ = (
        UniqueConstraint("order_id", "variant_id", name="uq_reservations_order_id_variant_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("status IN ('RESERVED', 'RELEASED', 'COMMITTED', 'EXPIRED')", name="status_known"),
        Index("ix_reservations_variant_id", "variant_id", postgresql_where=text("status = 'RESERVED'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("stock_orders.order_id", ondelete="CASCADE"))
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("products.id"))
    variant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("product_variants.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
metadata = Base.metadata
