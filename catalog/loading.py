"""Products as read models: a product with its category, variants and images, in three queries
for any number of products."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import Category, Product, ProductImage, ProductVariant
from catalog.views import ProductView


async def product_views(session: AsyncSession, rows: Sequence[tuple[Product, Category]]) -> list[ProductView]:
    """The views of these (product, category) rows, in their order."""
    if not rows:
        return []
    ids = [product.id for product, _ in rows]
    variants: dict[uuid.UUID, list[ProductVariant]] = defaultdict(list)
    for variant in await session.scalars(
        select(ProductVariant)
        .where(ProductVariant.product_id.in_(ids), ProductVariant.archived_at.is_(None))
        .order_by(
            ProductVariant.product_id, ProductVariant.position, ProductVariant.created_at, ProductVariant.id
        )
        .execution_options(populate_existing=True)
    ):
        variants[variant.product_id].append(variant)
    images: dict[uuid.UUID, list[ProductImage]] = defaultdict(list)
    for image in await session.scalars(
        select(ProductImage)
        .where(ProductImage.product_id.in_(ids))
        .order_by(ProductImage.product_id, ProductImage.position)
        .execution_options(populate_existing=True)
    ):
        images[image.product_id].append(image)
    return [ProductView.of(p, c, variants[p.id], images[p.id]) for p, c in rows]


async def product_view(session: AsyncSession, product_id: uuid.UUID) -> ProductView:
    """One product's view, read again from the database (after a write in this transaction)."""
    row = (
        await session.execute(
            select(Product, Category)
            .join(Category, Product.category_id == Category.id)
            .where(Product.id == product_id)
            .execution_options(populate_existing=True)
        )
    ).one()
    [view] = await product_views(session, [(row[0], row[1])])
    return view
