"""Writes shared by the product and variant use cases: SKUs claimed across the catalog, variants
and images inserted, and the search terms a product's variants give it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import Product, ProductImage, ProductVariant
from catalog.variant_rules import VariantDraft, search_terms
from servicekit.errors import AlreadyExists


async def claim_skus(session: AsyncSession, claims: Sequence[tuple[str, str]], product_id: uuid.UUID) -> None:
    """SKUs are unique across the catalog: a variant's SKU is no other product's, and a product's SKU
    no variant's of another product. Each (field, sku) is locked for the rest of the transaction
    (so two writers of one SKU take turns) and checked; AlreadyExists names the field.
    Within one table the unique constraints decide."""
    for field, sku in sorted(claims, key=lambda claim: claim[1]):
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:sku, 7))"), {"sku": sku})
        taken = await session.scalar(
            select(
                or_(
                    select(Product.id).where(Product.sku == sku, Product.id != product_id).exists(),
                    select(ProductVariant.id)
                    .where(ProductVariant.sku == sku, ProductVariant.product_id != product_id)
                    .exists(),
                )
            )
        )
        if taken:
            raise AlreadyExists("this SKU is taken by another product or variant", field=field)


def sku_conflict_field(error: Exception, field: str) -> AlreadyExists | None:
    """AlreadyExists for a unique-constraint violation on a SKU or option combination, else None."""
    message = str(getattr(error, "orig", error))
    if "uq_product_variants_sku" in message or "uq_products_sku" in message:
        return AlreadyExists("this SKU is taken by another product or variant", field=f"{field}sku")
    if "uq_product_variants_product_id_options_key" in message:
        return AlreadyExists("another variant of this product has these options", field=f"{field}options")
    return None


async def insert_variants(
    session: AsyncSession, product_id: uuid.UUID, drafts: Sequence[VariantDraft]
) -> list[uuid.UUID]:
    """Add these variants after the product's last one; their ids."""
    last = await session.scalar(
        select(func.max(ProductVariant.position)).where(ProductVariant.product_id == product_id)
    )
    start = -1 if last is None else last
    ids = [uuid.uuid4() for _ in drafts]
    session.add_all(
        ProductVariant(id=vid, product_id=product_id, position=start + 1 + i, **asdict(draft))
        for i, (vid, draft) in enumerate(zip(ids, drafts, strict=True))
    )
    await session.flush()
    return ids


async def replace_images(
    session: AsyncSession, product_id: uuid.UUID, images: Sequence[tuple[str, str]]
) -> None:
    await session.execute(delete(ProductImage).where(ProductImage.product_id == product_id))
    session.add_all(
        ProductImage(product_id=product_id, position=i, url=url, alt=alt)
        for i, (url, alt) in enumerate(images)
    )
    await session.flush()


async def refresh_search_terms(session: AsyncSession, product_id: uuid.UUID) -> None:
    """The product's search vector learns its active variants' SKUs and option values."""
    rows = (
        await session.execute(
            select(ProductVariant.sku, ProductVariant.options)
            .where(ProductVariant.product_id == product_id, ProductVariant.archived_at.is_(None))
            .order_by(ProductVariant.position)
        )
    ).all()
    terms = search_terms([sku for sku, _ in rows], [options for _, options in rows])
    await session.execute(
        update(Product)
        .where(Product.id == product_id, Product.variant_terms != terms)
        .values(variant_terms=terms)
    )
