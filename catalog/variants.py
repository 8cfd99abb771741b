"""The variants and images of a product, for administrators: add, change and archive a variant,
replace the images. Each write publishes catalog.product_updated with the product as it is now."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog import messages
from catalog.cache import CatalogCache
from catalog.loading import product_view
from catalog.models import Product, ProductVariant
from catalog.validation import MAX_SKU_LENGTH, check_price, check_stock, clean_sku
from catalog.variant_rules import (
    MAX_VARIANT_NAME_LENGTH,
    MAX_VARIANTS,
    VariantInput,
    clean_images,
    clean_options,
    clean_variant,
    variant_name,
)
from catalog.variant_store import (
    claim_skus,
    insert_variants,
    refresh_search_terms,
    replace_images,
    sku_conflict_field,
)
from catalog.views import ProductView, VariantView
from servicekit.auth import require_admin
from servicekit.context import Caller
from servicekit.db import transaction
from servicekit.errors import Conflict, InvalidArgument, NotFound, Violations
from servicekit.ids import parse_id
from servicekit.outbox import Outbox
from servicekit.text import clean_text


@dataclass(frozen=True)
class VariantChange:
    """The fields of UpdateProductVariant that are given (None: unchanged)."""

    sku: str | None = None
    name: str | None = None
    options: list[tuple[str, str]] | None = None
    price_minor: int | None = None
    currency: str | None = None
    low_stock_threshold: int | None = None


@dataclass(kw_only=True, eq=False, slots=True)
class VariantService:
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    cache: CatalogCache

    async def add(
        self, caller: Caller | None, *, product_id: str, variant: VariantInput
    ) -> tuple[ProductView, VariantView]:
        require_admin(caller)
        pid = parse_id(product_id, "product_id")
        try:
            async with transaction(self.sessions) as session:
                product = await self._product(session, pid)
                violations = Violations()
                draft = clean_variant(
                    variant,
                    currency=product.currency,
                    groups=product.option_groups,
                    field="variant",
                    violations=violations,
                )
                violations.raise_if_any()
                count = await session.scalar(
                    select(func.count()).where(
                        ProductVariant.product_id == pid, ProductVariant.archived_at.is_(None)
                    )
                )
                if (count or 0) >= MAX_VARIANTS:
                    raise InvalidArgument.field(
                        "product_id", f"a product has at most {MAX_VARIANTS} variants"
                    )
                await claim_skus(session, [("variant.sku", draft.sku)], pid)
                [vid] = await insert_variants(session, pid, [draft])
                view = await self._changed(session, pid, "variants")
        except IntegrityError as exc:
            raise sku_conflict_field(exc, "variant.") or exc from None
        await self.cache.invalidate()
        return view, _variant(view, vid)

    async def update(
        self, caller: Caller | None, *, variant_id: str, change: VariantChange
    ) -> tuple[ProductView, VariantView]:
        require_admin(caller)
        vid = parse_id(variant_id, "variant_id")
        try:
            async with transaction(self.sessions) as session:
                variant = await self._variant(session, vid)
                product = await self._product(session, variant.product_id)
                violations = Violations()
                if change.sku is not None:
                    sku = clean_sku(change.sku, violations)
                    if len(sku) <= MAX_SKU_LENGTH and sku != variant.sku:
                        violations.raise_if_any()
                        await claim_skus(session, [("sku", sku)], product.id)
                    variant.sku = sku
                if change.options is not None:
                    options, key = clean_options(change.options, product.option_groups, "options", violations)
                    renamed = variant.name == variant_name(variant.options)
                    variant.options, variant.options_key = options, key
                    if renamed:
                        variant.name = variant_name(options)
                if change.name is not None:
                    name = clean_text(
                        change.name, "name", violations, max_length=MAX_VARIANT_NAME_LENGTH, required=False
                    )
                    variant.name = name or variant_name(variant.options)
                if change.price_minor is not None:
                    if (change.currency or "").strip().upper() != product.currency:
                        violations.add(
                            "price.currency", f"must be the product's currency, {product.currency}"
                        )
                    else:
                        check_price(change.price_minor, product.currency, violations)
                    variant.price_minor = change.price_minor
                if change.low_stock_threshold is not None:
                    check_stock(change.low_stock_threshold, "low_stock_threshold", violations)
                    variant.low_stock_threshold = change.low_stock_threshold
                violations.raise_if_any()
                variant.updated_at = func.now()
                await session.flush()
                view = await self._changed(session, product.id, "variants")
        except IntegrityError as exc:
            raise sku_conflict_field(exc, "") or exc from None
        await self.cache.invalidate()
        return view, _variant(view, vid)

    async def delete(self, caller: Caller | None, *, variant_id: str) -> ProductView:
        """Archive the variant; a product keeps at least one."""
        require_admin(caller)
        vid = parse_id(variant_id, "variant_id")
        async with transaction(self.sessions) as session:
            variant = await self._variant(session, vid)
            await self._product(session, variant.product_id)
            others = await session.scalar(
                select(func.count()).where(
                    ProductVariant.product_id == variant.product_id,
                    ProductVariant.archived_at.is_(None),
                    ProductVariant.id != vid,
                )
            )
            if not others:
                raise Conflict("a product keeps at least one variant", reason="LAST_VARIANT")
            variant.archived_at = func.now()
            variant.updated_at = func.now()
            await session.flush()
            view = await self._changed(session, variant.product_id, "variants")
        await self.cache.invalidate()
        return view

    async def set_images(
        self, caller: Caller | None, *, product_id: str, images: list[tuple[str, str]]
    ) -> ProductView:
        require_admin(caller)
        pid = parse_id(product_id, "product_id")
        violations = Violations()
        cleaned = clean_images(images, violations)
        violations.raise_if_any()
        async with transaction(self.sessions) as session:
            await self._product(session, pid)
            await replace_images(session, pid, cleaned)
            view = await self._changed(session, pid, "images")
        await self.cache.invalidate()
        return view

    async def _product(self, session: AsyncSession, pid: uuid.UUID) -> Product:
        """The product, locked: its variants change one writer at a time."""
        product = await session.get(Product, pid, with_for_update=True)
        if product is None:
            raise NotFound("product not found")
        if product.archived_at is not None:
            raise Conflict("an archived product cannot be changed", reason="PRODUCT_ARCHIVED")
        return product

    @staticmethod
    async def _variant(session: AsyncSession, vid: uuid.UUID) -> ProductVariant:
        variant = await session.get(ProductVariant, vid, with_for_update=True)
        if variant is None or variant.archived_at is not None:
            raise NotFound("variant not found")
        return variant

    async def _changed(self, session: AsyncSession, pid: uuid.UUID, what: str) -> ProductView:
        await session.execute(update(Product).where(Product.id == pid).values(updated_at=func.now()))
        await refresh_search_terms(session, pid)
        view = await product_view(session, pid)
        await self.outbox.add(session, messages.product_updated(view, [what]))
        return view


def _variant(view: ProductView, vid: uuid.UUID) -> VariantView:
    return next(v for v in view.variants if v.id == str(vid))
