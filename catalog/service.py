"""Catalog use cases: products and categories, their reads, stock adjustments and the demo data."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog import messages
from catalog.cache import CatalogCache
from catalog.inventory import MOVED, moved, record_stock_change
from catalog.listing import ProductFilter, ProductListing, category_by_slug, search_terms
from catalog.loading import product_view, product_views
from catalog.models import RESERVED, Category, Product, ProductVariant, Reservation
from catalog.seeding import SeedResult, seed_catalog
from catalog.validation import (
    MAX_BATCH,
    MAX_CATEGORY_NAME_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    MAX_REASON_LENGTH,
    MAX_SLUG_LENGTH,
    MAX_STOCK,
    SLUG,
    check_price,
    check_stock,
    clean_currency,
    clean_query,
    clean_sku,
    slugify,
)
from catalog.variant_rules import (
    DEFAULT_VARIANT_NAME,
    VariantDraft,
    VariantInput,
    clean_images,
    clean_option_groups,
    clean_variants,
)
from catalog.variant_store import (
    claim_skus,
    insert_variants,
    refresh_search_terms,
    replace_images,
    sku_conflict_field,
)
from catalog.views import (
    CategoryView,
    ProductPage,
    ProductView,
    StockLevel,
    read_categories,
    read_product,
    weight,
)
from servicekit.auth import require_admin
from servicekit.changefeed import crosses_zero, stock_changed
from servicekit.context import Caller
from servicekit.cursor import CursorCodec
from servicekit.db import reads, transaction
from servicekit.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, Violations
from servicekit.ids import parse_id
from servicekit.outbox import Outbox
from servicekit.text import clean_text


@dataclass(kw_only=True, eq=False, slots=True)
class CatalogService:
    """Products, categories and stock levels. Writes are for administrators, commit their events
    through the outbox in the same transaction, and then invalidate the read cache; product pages
    come from `listing`."""

    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    cache: CatalogCache
    currency: str
    low_stock_threshold: int
    cursor_secret: InitVar[str]
    search_similarity_threshold: InitVar[float]
    listing: ProductListing = field(init=False, repr=False)

    def __post_init__(self, cursor_secret: str, search_similarity_threshold: float) -> None:
        self.listing = ProductListing(
            sessions=self.sessions,
            cache=self.cache,
            cursors=CursorCodec(cursor_secret, purpose="products", max_length=2048),
            currency=self.currency,
            search_similarity_threshold=search_similarity_threshold,
        )

    # -- products: writes (ADMIN) -------------------------------------------------------------------

    async def create_product(
        self,
        caller: Caller | None,
        *,
        sku: str,
        name: str,
        description: str,
        price_minor: int,
        currency: str,
        category_slug: str,
        stock: int,
        featured: bool,
        low_stock_threshold: int | None,
        option_groups: Sequence[tuple[str, Sequence[str]]] = (),
        variants: Sequence[VariantInput] = (),
        images: Sequence[tuple[str, str]] = (),
    ) -> ProductView:
        """A product and its variants; without variants given, one "Default" variant with the
        product's SKU and stock."""
        require_admin(caller)
        violations = Violations()
        sku = clean_sku(sku, violations)
        name = clean_text(
            name, "name", violations, max_length=MAX_NAME_LENGTH, required=True, multiline=False
        )
        description = clean_text(
            description,
            "description",
            violations,
            max_length=MAX_DESCRIPTION_LENGTH,
            required=False,
            multiline=True,
        )
        currency = clean_currency(currency, violations)
        check_price(price_minor, currency, violations)
        check_stock(stock, "stock", violations)
        threshold = self.low_stock_threshold if low_stock_threshold is None else low_stock_threshold
        check_stock(threshold, "low_stock_threshold", violations)
        category_slug = category_slug.strip()
        violations.check(bool(category_slug), "category_slug", "is required")
        groups = clean_option_groups(option_groups, violations)
        drafts = clean_variants(variants, currency=currency, groups=groups, violations=violations)
        if drafts:
            violations.check(stock == 0, "stock", "give the stock of each variant instead")
        elif not violations.items:
            drafts = [VariantDraft(sku, DEFAULT_VARIANT_NAME, [], "", None, stock, None)]
        cleaned_images = clean_images(images, violations)
        violations.raise_if_any()
        try:
            async with transaction(self.sessions) as session:
                category = await category_by_slug(session, category_slug, "category_slug")
                product_id = uuid.uuid4()
                claims = [("sku", sku)]
                if variants:
                    claims += [(f"variants[{i}].sku", d.sku) for i, d in enumerate(drafts)]
                await claim_skus(session, claims, product_id)
                product = Product(
                    id=product_id,
                    sku=sku,
                    name=name,
                    description=description,
                    price_minor=price_minor,
                    currency=currency,
                    category_id=category.id,
                    low_stock_threshold=threshold,
                    option_groups=groups,
                    featured=featured,
                )
                session.add(product)
                await session.flush()
                await insert_variants(session, product_id, drafts)
                await replace_images(session, product_id, cleaned_images)
                await refresh_search_terms(session, product_id)
                view = await self._view(session, product_id)
                await self.outbox.add(session, messages.product_created(view))
        except IntegrityError as exc:
            raise self._conflict(exc, "variants[]." if variants else "") from None
        await self.cache.invalidate()
        return view

    async def update_product(
        self,
        caller: Caller | None,
        *,
        product_id: str,
        sku: str | None = None,
        name: str | None = None,
        description: str | None = None,
        price_minor: int | None = None,
        currency: str | None = None,
        category_slug: str | None = None,
        featured: bool | None = None,
        low_stock_threshold: int | None = None,
    ) -> ProductView:
        """Only the arguments that are given change; price and currency change together."""
        require_admin(caller)
        pid = parse_id(product_id, "product_id")
        violations = Violations()
        changes: dict[str, Any] = {}
        if sku is not None:
            changes["sku"] = clean_sku(sku, violations)
        if name is not None:
            changes["name"] = clean_text(
                name, "name", violations, max_length=MAX_NAME_LENGTH, required=True, multiline=False
            )
        if description is not None:
            changes["description"] = clean_text(
                description,
                "description",
                violations,
                max_length=MAX_DESCRIPTION_LENGTH,
                required=False,
                multiline=True,
            )
        if (price_minor is None) != (currency is None):
            violations.add("price", "price and currency are changed together")
        elif price_minor is not None and currency is not None:
            changes["currency"] = clean_currency(currency, violations)
            check_price(price_minor, changes["currency"], violations)
            changes["price_minor"] = price_minor
        if low_stock_threshold is not None:
            check_stock(low_stock_threshold, "low_stock_threshold", violations)
            changes["low_stock_threshold"] = low_stock_threshold
        if featured is not None:
            changes["featured"] = featured
        if category_slug is not None:
            category_slug = category_slug.strip()
            violations.check(bool(category_slug), "category_slug", "must not be empty")
        violations.raise_if_any()
        try:
            async with transaction(self.sessions) as session:
                product = await self._lock(session, pid)
                if product.archived_at is not None:
                    raise Conflict("an archived product cannot be changed", reason="PRODUCT_ARCHIVED")
                if category_slug is not None:
                    changes["category_id"] = (
                        await category_by_slug(session, category_slug, "category_slug")
                    ).id
                if "sku" in changes and changes["sku"] != product.sku:
                    await claim_skus(session, [("sku", changes["sku"])], pid)
                    # A variant that carries the product's SKU (its default one) keeps carrying it.
                    await session.execute(
                        update(ProductVariant)
                        .where(ProductVariant.product_id == pid, ProductVariant.sku == product.sku)
                        .values(sku=changes["sku"], updated_at=func.now())
                    )
                changed = self._apply(product, changes)
                if not changed:
                    return await self._view(session, pid)
                product.updated_at = func.now()
                await session.flush()
                await refresh_search_terms(session, pid)
                view = await self._view(session, pid)
                await self.outbox.add(session, messages.product_updated(view, changed))
        except IntegrityError as exc:
            raise self._conflict(exc) from None
        await self.cache.invalidate()
        return view

    async def archive_product(self, caller: Caller | None, *, product_id: str) -> ProductView:
        """Soft delete, idempotent: the product leaves listings and can no longer be reserved."""
        require_admin(caller)
        pid = parse_id(product_id, "product_id")
        async with transaction(self.sessions) as session:
            product = await self._lock(session, pid)
            if product.archived_at is not None:
                return await self._view(session, pid)
            product.archived_at = func.now()
            product.updated_at = func.now()
            await session.flush()
            await session.refresh(product)
            assert product.archived_at is not None
            await self.outbox.add(
                session, messages.product_archived(str(pid), product.sku, product.archived_at)
            )
            view = await self._view(session, pid)
        await self.cache.invalidate()
        return view

    async def adjust_stock(
        self, caller: Caller | None, *, product_id: str, delta: int, reason: str = "", variant_id: str = ""
    ) -> ProductView:
        """Add (or remove) units of a variant in one conditional update; stock never goes below zero.
        A product with one variant needs no variant named."""
        caller = require_admin(caller)
        pid = parse_id(product_id, "product_id")
        vid = parse_id(variant_id, "variant_id") if variant_id else None
        violations = Violations()
        violations.check(delta != 0, "delta", "must not be zero")
        violations.check(
            abs(delta) <= MAX_STOCK, "delta", f"must be between -{MAX_STOCK:,} and {MAX_STOCK:,}"
        )
        reason = clean_text(
            reason, "reason", violations, max_length=MAX_REASON_LENGTH, required=False, multiline=False
        )
        violations.raise_if_any()
        async with transaction(self.sessions) as session:
            vid = await self._variant_of(session, pid, vid)
            row = (
                await session.execute(
                    update(ProductVariant)
                    .where(
                        ProductVariant.id == vid,
                        ProductVariant.product_id == Product.id,
                        ProductVariant.stock + delta >= 0,
                        ProductVariant.stock + delta <= MAX_STOCK,
                    )
                    .values(stock=ProductVariant.stock + delta, updated_at=func.now())
                    .returning(*MOVED)
                )
            ).first()
            if row is None:
                current = await session.scalar(select(ProductVariant.stock).where(ProductVariant.id == vid))
                assert current is not None
                if current + delta < 0:
                    raise InvalidArgument.field("delta", f"would take stock below zero ({current} available)")
                raise InvalidArgument.field("delta", f"would take stock above {MAX_STOCK:,}")
            await record_stock_change(
                self.outbox,
                session,
                moved(row, delta),
                cause="ADJUSTMENT",
                changed_by=caller.account_id,
                reason=reason,
            )
            await session.execute(update(Product).where(Product.id == pid).values(updated_at=func.now()))
            view = await self._view(session, pid)
        await self.cache.invalidate(
            stock_changed([str(pid)], availability=crosses_zero(row.stock - delta, row.stock))
        )
        return view

    @staticmethod
    async def _variant_of(session: AsyncSession, pid: uuid.UUID, vid: uuid.UUID | None) -> uuid.UUID:
        """The named variant of the product, or its only active one."""
        found = list(
            (
                await session.scalars(
                    select(ProductVariant.id).where(
                        ProductVariant.product_id == pid,
                        ProductVariant.archived_at.is_(None),
                        *([ProductVariant.id == vid] if vid is not None else []),
                    )
                )
            ).all()
        )
        if len(found) == 1:
            return found[0]
        if vid is not None:
            raise NotFound("variant not found")
        if not found:
            raise NotFound("product not found")
        raise InvalidArgument.field("variant_id", "the product has several variants; name one")

    # -- products: reads (public) ---------------------------------------------------------------------

    async def get_product(self, *, product_id: str) -> ProductView:
        pid = parse_id(product_id, "product_id")
        found = await self._cached_products([pid])
        if not found:
            raise NotFound("product not found")
        return found[0]

    async def batch_get_products(self, *, product_ids: Sequence[str]) -> list[ProductView]:
        """Up to 100 products in one query (cache first); unknown ids are left out."""
        if len(product_ids) > MAX_BATCH:
            raise InvalidArgument.field("product_ids", f"at most {MAX_BATCH} ids")
        wanted = list(dict.fromkeys(parse_id(i, "product_ids") for i in product_ids))
        return await self._cached_products(wanted)

    async def list_products(
        self,
        caller: Caller | None,
        *,
        filter: ProductFilter,
        sort: str = "NEWEST",
        page_size: int = 0,
        page_token: str = "",
    ) -> ProductPage:
        if sort == "RELEVANCE":
            raise InvalidArgument.field("sort", "RELEVANCE is for search only")
        return await self.listing.page(
            caller, filter=filter, sort=sort, page_size=page_size, page_token=page_token
        )

    async def search_products(
        self,
        caller: Caller | None,
        *,
        query: str,
        filter: ProductFilter,
        sort: str = "RELEVANCE",
        page_size: int = 0,
        page_token: str = "",
    ) -> ProductPage:
        """Full text on the weighted vector, or trigram similarity of the name for prefixes and typos."""
        search = search_terms(clean_query(query))
        return await self.listing.page(
            caller, filter=filter, sort=sort, page_size=page_size, page_token=page_token, search=search
        )

    # -- categories -------------------------------------------------------------------------------------

    async def list_categories(self) -> list[CategoryView]:
        version = await self.cache.version()
        key = self.cache.key(version, "categories", "all") if version is not None else ""
        if key:
            (cached,) = await self.cache.get_decoded([key], read_categories, weigh=weight)
            if cached is not None:
                return cached
        counted = func.count(Product.id).filter(Product.archived_at.is_(None))
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(Category, counted)
                    .outerjoin(Product, Product.category_id == Category.id)
                    .group_by(Category.id)
                    .order_by(Category.name, Category.id)
                )
            ).all()
        categories = [
            CategoryView(id=str(c.id), slug=c.slug, name=c.name, product_count=count) for c, count in rows
        ]
        if key:
            await self.cache.set_decoded({key: (orjson.dumps(categories), categories)}, weigh=weight)
        return categories

    async def create_category(self, caller: Caller | None, *, name: str, slug: str = "") -> CategoryView:
        require_admin(caller)
        violations = Violations()
        name = clean_text(
            name, "name", violations, max_length=MAX_CATEGORY_NAME_LENGTH, required=True, multiline=False
        )
        slug = slug.strip()
        if slug:
            if len(slug) > MAX_SLUG_LENGTH or not SLUG.match(slug):
                violations.add(
                    "slug",
                    f"must be lower-case words of letters and digits joined by '-', at most {MAX_SLUG_LENGTH}",
                )
        elif not violations.items:
            slug = slugify(name)
            violations.check(bool(slug), "slug", "cannot be derived from the name; give one")
        violations.raise_if_any()
        try:
            async with transaction(self.sessions) as session:
                category = Category(id=uuid.uuid4(), slug=slug, name=name)
                session.add(category)
                await session.flush()
        except IntegrityError as exc:
            if "uq_categories_slug" in str(exc.orig):
                raise AlreadyExists("a category with this slug already exists", field="slug") from None
            raise
        await self.cache.invalidate()
        return CategoryView(id=str(category.id), slug=slug, name=name, product_count=0)

    # -- stock --------------------------------------------------------------------------------------------

    async def get_stock(self, caller: Caller | None, *, product_ids: Sequence[str]) -> list[StockLevel]:
        require_admin(caller)
        if len(product_ids) > MAX_BATCH:
            raise InvalidArgument.field("product_ids", f"at most {MAX_BATCH} ids")
        wanted = list(dict.fromkeys(parse_id(i, "product_ids") for i in product_ids))
        if not wanted:
            return []
        reserved = (
            select(func.coalesce(func.sum(Reservation.quantity), 0))
            .where(Reservation.product_id == Product.id, Reservation.status == RESERVED)
            .scalar_subquery()
        )
        available = (
            select(func.coalesce(func.sum(ProductVariant.stock), 0))
            .where(ProductVariant.product_id == Product.id, ProductVariant.archived_at.is_(None))
            .scalar_subquery()
        )
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(Product.id, available, reserved, Product.low_stock_threshold).where(
                        Product.id.in_(wanted)
                    )
                )
            ).all()
        by_id = {row[0]: StockLevel(str(row[0]), int(row[1]), int(row[2]), row[3]) for row in rows}
        return [by_id[i] for i in wanted if i in by_id]

    # -- demo data ------------------------------------------------------------------------------------------

    async def is_empty(self) -> bool:
        async with self.sessions() as session:
            return await session.scalar(select(Product.id).limit(1)) is None

    async def seed(
        self, categories: Sequence[dict[str, str]], products: Sequence[dict[str, Any]]
    ) -> SeedResult:
        """For the operator's `ecommerce seed`: add what is missing, by slug and SKU; run it twice, no harm."""
        async with transaction(self.sessions) as session:
            created = await seed_catalog(
                session,
                self.outbox,
                categories,
                products,
                currency=self.currency,
                low_stock_threshold=self.low_stock_threshold,
            )
        if created.categories or created.products:
            await self.cache.invalidate()
        return created

    async def _lock(self, session: AsyncSession, product_id: uuid.UUID) -> Product:
        product = await session.get(Product, product_id, with_for_update=True)
        if product is None:
            raise NotFound("product not found")
        return product

    async def _view(self, session: AsyncSession, product_id: uuid.UUID) -> ProductView:
        return await product_view(session, product_id)

    @staticmethod
    def _apply(product: Product, changes: dict[str, Any]) -> list[str]:
        """Set what differs; returns the names of the Product fields that changed."""
        names = {"price_minor": "price", "currency": "price", "category_id": "category"}
        changed: list[str] = []
        for attribute, value in changes.items():
            if getattr(product, attribute) != value:
                setattr(product, attribute, value)
                name = names.get(attribute, attribute)
                if name not in changed:
                    changed.append(name)
        return changed

    @staticmethod
    def _conflict(error: IntegrityError, variant_field: str = "") -> Exception:
        if "uq_products_sku" in str(error.orig):
            return AlreadyExists("a product with this SKU already exists", field="sku")
        return sku_conflict_field(error, variant_field) or error

    async def _cached_products(self, ids: list[uuid.UUID]) -> list[ProductView]:
        if not ids:
            return []
        unique = list(dict.fromkeys(ids))
        versions = await self.cache.product_versions([str(i) for i in unique])
        found: dict[uuid.UUID, ProductView] = {}
        keys: dict[uuid.UUID, str] = {}
        if versions is not None:
            keys = {i: self.cache.key(v, "product", str(i)) for i, v in zip(unique, versions, strict=True)}
            views = await self.cache.get_decoded(list(keys.values()), read_product, weigh=weight)
            found = {i: view for i, view in zip(keys, views, strict=True) if view is not None}
        missing = [i for i in unique if i not in found]
        if missing:
            async with reads(self.sessions) as session:
                rows = (
                    await session.execute(
                        select(Product, Category)
                        .join(Category, Product.category_id == Category.id)
                        .where(Product.id.in_(missing))
                    )
                ).all()
                loaded_views = await product_views(session, [(p, c) for p, c in rows])
            loaded = {uuid.UUID(v.id): v for v in loaded_views}
            found.update(loaded)
            if keys:
                await self.cache.set_decoded(
                    {keys[i]: (view.to_json(), view) for i, view in loaded.items()}, weigh=weight
                )
        return [found[i] for i in ids if i in found]
