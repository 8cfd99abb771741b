"""Loading the demo catalog: categories by slug and products by SKU, each added once, with their
variants and images."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import messages
from catalog.loading import product_view
from catalog.models import Category, Product
from catalog.variant_rules import (
    DEFAULT_VARIANT_NAME,
    VariantDraft,
    VariantInput,
    clean_images,
    clean_option_groups,
    clean_variants,
)
from catalog.variant_store import insert_variants, refresh_search_terms, replace_images
from servicekit.errors import Violations
from servicekit.money import to_minor
from servicekit.outbox import Outbox


@dataclass(frozen=True)
class SeedResult:
    categories: int
    products: int


def _variants(
    values: dict[str, Any], currency: str, violations: Violations
) -> tuple[list[Any], list[VariantDraft]]:
    """The option groups and variants of a demo product; one Default variant when it lists none."""
    groups = clean_option_groups(
        [(g["name"], g["values"]) for g in values.get("option_groups", [])], violations
    )
    given = [
        VariantInput(
            sku=v["sku"],
            options=list(v.get("options", {}).items()),
            price_minor=to_minor(v["price"], currency) if "price" in v else None,
            currency=currency,
            stock=v.get("stock", 0),
        )
        for v in values.get("variants", [])
    ]
    drafts = clean_variants(given, currency=currency, groups=groups, violations=violations)
    if not given:
        drafts = [
            VariantDraft(values["sku"], DEFAULT_VARIANT_NAME, [], "", None, values.get("stock", 0), None)
        ]
    return groups, drafts


async def seed_catalog(
    session: AsyncSession,
    outbox: Outbox,
    categories: Sequence[dict[str, str]],
    products: Sequence[dict[str, Any]],
    *,
    currency: str,
    low_stock_threshold: int,
) -> SeedResult:
    created_categories = created_products = 0
    for values in categories:
        inserted = await session.scalar(
            insert(Category)
            .values(id=uuid.uuid4(), slug=values["slug"], name=values["name"])
            .on_conflict_do_nothing(index_elements=["slug"])
            .returning(Category.id)
        )
        created_categories += inserted is not None
    ids = {slug: cid for slug, cid in (await session.execute(select(Category.slug, Category.id))).all()}
    # Spread creation times so that "newest first" shows the demo data in a stable order.
    for age, values in enumerate(reversed(products)):
        violations = Violations()
        groups, drafts = _variants(values, currency, violations)
        images = clean_images([(i["url"], i.get("alt", "")) for i in values.get("images", [])], violations)
        violations.raise_if_any()
        product_id = await session.scalar(
            insert(Product)
            .values(
                id=uuid.uuid4(),
                sku=values["sku"],
                name=values["name"],
                description=values["description"],
                price_minor=to_minor(values["price"], currency),
                currency=currency,
                category_id=ids[values["category"]],
                low_stock_threshold=values.get("low_stock_threshold", low_stock_threshold),
                option_groups=groups,
                featured=values.get("featured", False),
                created_at=func.now() - timedelta(minutes=age),
                updated_at=func.now(),
            )
            .on_conflict_do_nothing(index_elements=["sku"])
            .returning(Product.id)
        )
        if product_id is None:
            continue
        created_products += 1
        await insert_variants(session, product_id, drafts)
        await replace_images(session, product_id, images)
        await refresh_search_terms(session, product_id)
        await outbox.add(session, messages.product_created(await product_view(session, product_id)))
    return SeedResult(created_categories, created_products)
