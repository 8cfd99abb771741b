"""Catalog use cases: products and categories, listing and search, and the inventory the saga uses."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import REGCONFIG, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog import events
from catalog.cache import CatalogCache
from catalog.events import Line, ReplyTo
from catalog.models import (
    COMMITTED,
    EXPIRED,
    REJECTED,
    RELEASED,
    RESERVED,
    Category,
    Product,
    Reservation,
    StockOrder,
)
from servicekit.auth import require_admin
from servicekit.context import Caller
from servicekit.cursor import CursorCodec
from servicekit.db import transaction
from servicekit.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied, Violations
from servicekit.money import exponent, is_currency, to_minor
from servicekit.outbox import Outbox

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_SKU_LENGTH = 64
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000
MAX_CATEGORY_NAME_LENGTH = 100
MAX_SLUG_LENGTH = 64
MAX_QUERY_LENGTH = 200
MAX_REASON_LENGTH = 500
MAX_BATCH = 100
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_PRICE = Decimal("1000000")
# Far below 2^31 - 1, so that stock + delta never overflows the INT column.
MAX_STOCK = 1_000_000_000
# Price filters beyond any price are clamped, so that they never overflow BIGINT.
MAX_PRICE_FILTER = 10**15
MAX_SEARCH_WORDS = 8

SKU = re.compile(r"^[A-Z0-9][A-Z0-9._-]*$")
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
WORD = re.compile(r"[^\W_]+")

SORTS = ("NEWEST", "PRICE_ASC", "PRICE_DESC", "NAME", "RELEVANCE")
CATEGORY_FIELDS = ("id", "slug", "name", "product_count")

ENGLISH = cast(literal("english"), REGCONFIG)


# -- read models ---------------------------------------------------------------------------------


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


def _categories_from_json(raw: bytes) -> list[CategoryView]:
    return [CategoryView(**values) for values in orjson.loads(raw)]


def _decoded(decode: Callable[[bytes], T], raw: bytes) -> T | None:
    """A cached entry, or None (a miss) when it no longer decodes, e.g. written by an older release."""
    try:
        return decode(raw)
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring an unreadable cache entry: %s", exc)
        return None


_read_product = functools.partial(_decoded, ProductView.from_json)
_read_page = functools.partial(_decoded, ProductPage.from_json)
_read_categories = functools.partial(_decoded, _categories_from_json)


def _weight(entry: object) -> int:
    """What a decoded entry weighs in the cache's memory, in products."""
    return len(entry.products) + 1 if isinstance(entry, ProductPage) else 1


@dataclass(frozen=True)
class StockLevel:
    product_id: str
    available: int
    reserved: int
    low_stock_threshold: int


@dataclass(frozen=True)
class ProductFilter:
    category_slug: str = ""
    min_price_minor: int | None = None
    max_price_minor: int | None = None
    # Decimal strings in major units of the catalog's currency.
    min_price: str | None = None
    max_price: str | None = None
    in_stock_only: bool = False
    featured_only: bool = False
    include_archived: bool = False


@dataclass(frozen=True)
class RejectedLine:
    product_id: str
    requested: int
    available: int
    reason: str


@dataclass(frozen=True)
class SeedResult:
    categories: int
    products: int


@dataclass
class _Listing:
    """A validated listing request: what to match, in which order, from where."""

    conditions: list[ColumnElement[bool]]
    sort: str
    page_size: int
    fingerprint: str
    after: list[Any] | None = None
    search: _Search | None = None


@dataclass(frozen=True)
class _Search:
    query: str
    # What trigram matching looks for in names, and the excluded (-word) part of the query.
    words: list[str] = field(default_factory=list)
    excluded: str = ""


# -- input checks ----------------------------------------------------------------------------------


def _clean_text(
    raw: str, field_name: str, violations: Violations, *, max_length: int, required: bool, multiline: bool
) -> str:
    value = unicodedata.normalize("NFC", raw).strip()
    if not value:
        if required:
            violations.add(field_name, "is required")
        return value
    if len(value) > max_length:
        violations.add(field_name, f"must be at most {max_length:,} characters")
        return value
    allowed = "\n\r\t" if multiline else ""
    forbidden = ("Cc", "Cs", "Co") if multiline else ("Cc", "Cs", "Co", "Cf")
    if any(unicodedata.category(ch) in forbidden and ch not in allowed for ch in value):
        violations.add(field_name, "must not contain control characters")
    return value


def _clean_sku(raw: str, violations: Violations) -> str:
    sku = raw.strip().upper()
    if not sku:
        violations.add("sku", "is required")
    elif len(sku) > MAX_SKU_LENGTH:
        violations.add("sku", f"must be at most {MAX_SKU_LENGTH} characters")
    elif not SKU.match(sku):
        violations.add(
            "sku", "may contain only letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return sku


def _clean_currency(raw: str, violations: Violations) -> str:
    currency = raw.strip().upper()
    if not currency:
        violations.add("currency", "is required")
    elif len(currency) != 3 or not is_currency(currency):
        violations.add("currency", "is not an ISO 4217 currency code")
    return currency


def _check_price(price_minor: int, currency: str, violations: Violations) -> None:
    try:
        highest = to_minor(MAX_PRICE, currency)
    except ValueError:  # an unknown currency, already reported
        return
    if price_minor <= 0:
        violations.add("price", "must be greater than zero")
    elif price_minor > highest:
        violations.add("price", f"must be at most {MAX_PRICE:,.{exponent(currency)}f}")


def _check_stock(value: int, field_name: str, violations: Violations) -> None:
    if value < 0:
        violations.add(field_name, "must not be negative")
    elif value > MAX_STOCK:
        violations.add(field_name, f"must be at most {MAX_STOCK:,}")


def slugify(name: str) -> str:
    """ "Home & Garden" -> "home-garden"; accents dropped, anything else becomes a hyphen."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "-".join(WORD.findall(ascii_name.lower().replace("_", " ")))[:MAX_SLUG_LENGTH].strip("-")


def _parse_id(value: str, field_name: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument.field(field_name, "is not a valid id") from None


def _page_size(value: int) -> int:
    if value == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise InvalidArgument.field("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
    return value


def _search(query: str) -> _Search:
    """Split a websearch query for trigram matching: the words to find, and the excluded ones."""
    words: list[str] = []
    excluded: list[str] = []
    for token in query.split():
        if token.upper() == "OR":
            continue
        if token.startswith("-"):
            excluded.append(token)
            continue
        words.extend(w.lower() for w in WORD.findall(token) if len(w) >= 2)
    return _Search(query=query, words=words[:MAX_SEARCH_WORDS], excluded=" ".join(excluded))


def _crossed_threshold(old: int, new: int, threshold: int) -> bool:
    """Stock fell to or below its threshold with this change (once per crossing)."""
    return threshold > 0 and old > threshold >= new


async def record_stock_change(
    outbox: Outbox,
    session: AsyncSession,
    *,
    product_id: str,
    sku: str,
    name: str,
    old: int,
    new: int,
    threshold: int,
    cause: str,
    order_id: str = "",
    changed_by: str = "",
    reason: str = "",
) -> None:
    """catalog.stock_changed for every change, and catalog.stock_low when it crosses the threshold."""
    await outbox.add(
        session,
        events.stock_changed(
            product_id=product_id,
            old_stock=old,
            new_stock=new,
            cause=cause,
            order_id=order_id,
            changed_by=changed_by,
            reason=reason,
        ),
    )
    if _crossed_threshold(old, new, threshold):
        await outbox.add(
            session,
            events.stock_low(product_id=product_id, sku=sku, name=name, stock=new, threshold=threshold),
        )


# -- sorts and cursors -----------------------------------------------------------------------------


def _sort_keys(sort: str, score: ColumnElement[float] | None) -> list[tuple[ColumnElement[Any], bool, str]]:
    """(expression, descending, cursor type) per key, the id last as the tie-breaker."""
    if sort == "NEWEST":
        return [(Product.created_at, True, "time"), (Product.id, True, "id")]
    if sort == "PRICE_ASC":
        return [(Product.price_minor, False, "int"), (Product.id, False, "id")]
    if sort == "PRICE_DESC":
        return [(Product.price_minor, True, "int"), (Product.id, True, "id")]
    if sort == "NAME":
        return [(func.lower(Product.name), False, "str"), (Product.id, False, "id")]
    assert score is not None
    return [(score, True, "float"), (Product.id, False, "id")]


def _after(keys: list[tuple[ColumnElement[Any], bool, str]], values: list[Any]) -> ColumnElement[bool]:
    """The keyset condition: rows strictly after `values` in the sort order."""
    directions = {descending for _, descending, _ in keys}
    if len(directions) == 1:
        # A row comparison the b-tree index of the sort can serve.
        left = tuple_(*(expr for expr, _, _ in keys))
        right = tuple_(*(literal(v) for v in values))
        return left < right if directions.pop() else left > right
    clauses = []
    for i, (expr, descending, _) in enumerate(keys):
        equal = [keys[j][0] == values[j] for j in range(i)]
        beyond = expr < values[i] if descending else expr > values[i]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


def _encode_value(value: Any, kind: str) -> Any:
    if kind == "time":
        return value.isoformat()
    if kind == "id":
        return str(value)
    if kind == "float":
        return float(value)
    return value


def _decode_value(value: Any, kind: str) -> Any:
    if kind == "time" and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive time")
        return parsed
    if kind == "id" and isinstance(value, str):
        return uuid.UUID(value)
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "str" and isinstance(value, str):
        return value
    raise ValueError(f"not a {kind}")


class CatalogService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        cache: CatalogCache,
        cursor_secret: str,
        currency: str,
        low_stock_threshold: int,
        search_similarity_threshold: float,
    ) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.cache = cache
        self.cursors = CursorCodec(cursor_secret, purpose="products", max_length=2048)
        self.currency = currency
        self.low_stock_threshold = low_stock_threshold
        self.search_similarity_threshold = search_similarity_threshold

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
    ) -> ProductView:
        require_admin(caller)
        violations = Violations()
        sku = _clean_sku(sku, violations)
        name = _clean_text(
            name, "name", violations, max_length=MAX_NAME_LENGTH, required=True, multiline=False
        )
        description = _clean_text(
            description,
            "description",
            violations,
            max_length=MAX_DESCRIPTION_LENGTH,
            required=False,
            multiline=True,
        )
        currency = _clean_currency(currency, violations)
        _check_price(price_minor, currency, violations)
        _check_stock(stock, "stock", violations)
        threshold = self.low_stock_threshold if low_stock_threshold is None else low_stock_threshold
        _check_stock(threshold, "low_stock_threshold", violations)
        category_slug = category_slug.strip()
        violations.check(bool(category_slug), "category_slug", "is required")
        violations.raise_if_any()
        try:
            async with transaction(self.sessions) as session:
                category = await self._category(session, category_slug, "category_slug")
                product = Product(
                    id=uuid.uuid4(),
                    sku=sku,
                    name=name,
                    description=description,
                    price_minor=price_minor,
                    currency=currency,
                    category_id=category.id,
                    stock=stock,
                    low_stock_threshold=threshold,
                    featured=featured,
                )
                session.add(product)
                await session.flush()
                view = await self._view(session, product.id)
                await self.outbox.add(session, events.product_created(view))
        except IntegrityError as exc:
            raise self._conflict(exc) from None
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
        pid = _parse_id(product_id, "product_id")
        violations = Violations()
        changes: dict[str, Any] = {}
        if sku is not None:
            changes["sku"] = _clean_sku(sku, violations)
        if name is not None:
            changes["name"] = _clean_text(
                name, "name", violations, max_length=MAX_NAME_LENGTH, required=True, multiline=False
            )
        if description is not None:
            changes["description"] = _clean_text(
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
            changes["currency"] = _clean_currency(currency, violations)
            _check_price(price_minor, changes["currency"], violations)
            changes["price_minor"] = price_minor
        if low_stock_threshold is not None:
            _check_stock(low_stock_threshold, "low_stock_threshold", violations)
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
                        await self._category(session, category_slug, "category_slug")
                    ).id
                changed = self._apply(product, changes)
                if not changed:
                    return await self._view(session, pid)
                product.updated_at = func.now()
                await session.flush()
                view = await self._view(session, pid)
                await self.outbox.add(session, events.product_updated(view, changed))
        except IntegrityError as exc:
            raise self._conflict(exc) from None
        await self.cache.invalidate()
        return view

    async def archive_product(self, caller: Caller | None, *, product_id: str) -> ProductView:
        """Soft delete, idempotent: the product leaves listings and can no longer be reserved."""
        require_admin(caller)
        pid = _parse_id(product_id, "product_id")
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
                session, events.product_archived(str(pid), product.sku, product.archived_at)
            )
            view = await self._view(session, pid)
        await self.cache.invalidate()
        return view

    async def adjust_stock(
        self, caller: Caller | None, *, product_id: str, delta: int, reason: str = ""
    ) -> ProductView:
        """Add (or remove) units in one conditional update; stock never goes below zero."""
        caller = require_admin(caller)
        pid = _parse_id(product_id, "product_id")
        violations = Violations()
        violations.check(delta != 0, "delta", "must not be zero")
        violations.check(
            abs(delta) <= MAX_STOCK, "delta", f"must be between -{MAX_STOCK:,} and {MAX_STOCK:,}"
        )
        reason = _clean_text(
            reason, "reason", violations, max_length=MAX_REASON_LENGTH, required=False, multiline=False
        )
        violations.raise_if_any()
        async with transaction(self.sessions) as session:
            row = (
                await session.execute(
                    update(Product)
                    .where(
                        Product.id == pid,
                        Product.stock + delta >= 0,
                        Product.stock + delta <= MAX_STOCK,
                    )
                    .values(stock=Product.stock + delta, updated_at=func.now())
                    .returning(Product.stock, Product.low_stock_threshold, Product.sku, Product.name)
                )
            ).first()
            if row is None:
                current = await session.scalar(select(Product.stock).where(Product.id == pid))
                if current is None:
                    raise NotFound("product not found")
                if current + delta < 0:
                    raise InvalidArgument.field("delta", f"would take stock below zero ({current} available)")
                raise InvalidArgument.field("delta", f"would take stock above {MAX_STOCK:,}")
            await record_stock_change(
                self.outbox,
                session,
                product_id=str(pid),
                sku=row.sku,
                name=row.name,
                old=row.stock - delta,
                new=row.stock,
                threshold=row.low_stock_threshold,
                cause="ADJUSTMENT",
                changed_by=caller.account_id,
                reason=reason,
            )
            view = await self._view(session, pid)
        await self.cache.invalidate()
        return view

    # -- products: reads (public) ---------------------------------------------------------------------

    async def get_product(self, *, product_id: str) -> ProductView:
        pid = _parse_id(product_id, "product_id")
        found = await self._cached_products([pid])
        if not found:
            raise NotFound("product not found")
        return found[0]

    async def batch_get_products(self, *, product_ids: Sequence[str]) -> list[ProductView]:
        """Up to 100 products in one query (cache first); unknown ids are left out."""
        if len(product_ids) > MAX_BATCH:
            raise InvalidArgument.field("product_ids", f"at most {MAX_BATCH} ids")
        wanted = list(dict.fromkeys(_parse_id(i, "product_ids") for i in product_ids))
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
        return await self._page(caller, filter=filter, sort=sort, page_size=page_size, page_token=page_token)

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
        text_query = unicodedata.normalize("NFC", query).strip()
        if not text_query:
            raise InvalidArgument.field("query", "is required")
        if len(text_query) > MAX_QUERY_LENGTH:
            raise InvalidArgument.field("query", f"must be at most {MAX_QUERY_LENGTH} characters")
        if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cf") for ch in text_query):
            raise InvalidArgument.field("query", "must not contain control characters")
        if not any(ch.isalnum() for ch in text_query):
            raise InvalidArgument.field("query", "must contain a letter or a digit")
        search = _search(text_query)
        return await self._page(
            caller, filter=filter, sort=sort, page_size=page_size, page_token=page_token, search=search
        )

    # -- categories -------------------------------------------------------------------------------------

    async def list_categories(self) -> list[CategoryView]:
        version = await self.cache.version()
        key = self.cache.key(version, "categories", "all") if version is not None else ""
        if key:
            (cached,) = await self.cache.get_decoded([key], _read_categories, weigh=_weight)
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
            await self.cache.set_decoded({key: (orjson.dumps(categories), categories)}, weigh=_weight)
        return categories

    async def create_category(self, caller: Caller | None, *, name: str, slug: str = "") -> CategoryView:
        require_admin(caller)
        violations = Violations()
        name = _clean_text(
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
        wanted = list(dict.fromkeys(_parse_id(i, "product_ids") for i in product_ids))
        if not wanted:
            return []
        reserved = (
            select(func.coalesce(func.sum(Reservation.quantity), 0))
            .where(Reservation.product_id == Product.id, Reservation.status == RESERVED)
            .scalar_subquery()
        )
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(Product.id, Product.stock, reserved, Product.low_stock_threshold).where(
                        Product.id.in_(wanted)
                    )
                )
            ).all()
        by_id = {row[0]: StockLevel(str(row[0]), row[1], int(row[2]), row[3]) for row in rows}
        return [by_id[i] for i in wanted if i in by_id]

    # -- demo data ------------------------------------------------------------------------------------------

    async def is_empty(self) -> bool:
        async with self.sessions() as session:
            return await session.scalar(select(Product.id).limit(1)) is None

    async def seed(
        self, categories: Sequence[dict[str, str]], products: Sequence[dict[str, Any]]
    ) -> SeedResult:
        """For the operator's `ecommerce seed`: add what is missing, by slug and SKU; run it twice, no harm."""
        created_categories = created_products = 0
        async with transaction(self.sessions) as session:
            for values in categories:
                inserted = await session.scalar(
                    insert(Category)
                    .values(id=uuid.uuid4(), slug=values["slug"], name=values["name"])
                    .on_conflict_do_nothing(index_elements=["slug"])
                    .returning(Category.id)
                )
                created_categories += inserted is not None
            ids = {
                slug: cid for slug, cid in (await session.execute(select(Category.slug, Category.id))).all()
            }
            # Spread creation times so that "newest first" shows the demo data in a stable order.
            for age, values in enumerate(reversed(products)):
                inserted = await session.scalar(
                    insert(Product)
                    .values(
                        id=uuid.uuid4(),
                        sku=values["sku"],
                        name=values["name"],
                        description=values["description"],
                        price_minor=to_minor(values["price"], self.currency),
                        currency=self.currency,
                        category_id=ids[values["category"]],
                        stock=values["stock"],
                        low_stock_threshold=values.get("low_stock_threshold", self.low_stock_threshold),
                        featured=values.get("featured", False),
                        created_at=func.now() - timedelta(minutes=age),
                        updated_at=func.now(),
                    )
                    .on_conflict_do_nothing(index_elements=["sku"])
                    .returning(Product.id)
                )
                if inserted is not None:
                    created_products += 1
                    await self.outbox.add(
                        session, events.product_created(await self._view(session, inserted))
                    )
        if created_categories or created_products:
            await self.cache.invalidate()
        return SeedResult(created_categories, created_products)

    # -- helpers --------------------------------------------------------------------------------------------

    async def _category(self, session: AsyncSession, slug: str, field_name: str) -> Category:
        # No category has a slug outside the slug pattern; such a slug (a NUL in it, say, which
        # PostgreSQL refuses in text) is not looked up.
        if len(slug) > MAX_SLUG_LENGTH or not SLUG.fullmatch(slug):
            raise InvalidArgument.field(field_name, "no category has this slug")
        category = await session.scalar(select(Category).where(Category.slug == slug))
        if category is None:
            raise InvalidArgument.field(field_name, "no category has this slug")
        return category

    async def _lock(self, session: AsyncSession, product_id: uuid.UUID) -> Product:
        product = await session.get(Product, product_id, with_for_update=True)
        if product is None:
            raise NotFound("product not found")
        return product

    async def _view(self, session: AsyncSession, product_id: uuid.UUID) -> ProductView:
        product, category = (
            await session.execute(
                select(Product, Category)
                .join(Category, Product.category_id == Category.id)
                .where(Product.id == product_id)
                .execution_options(populate_existing=True)
            )
        ).one()
        return ProductView.of(product, category)

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
    def _conflict(error: IntegrityError) -> Exception:
        if "uq_products_sku" in str(error.orig):
            return AlreadyExists("a product with this SKU already exists", field="sku")
        return error

    async def _cached_products(self, ids: list[uuid.UUID]) -> list[ProductView]:
        if not ids:
            return []
        version = await self.cache.version()
        found: dict[uuid.UUID, ProductView] = {}
        if version is not None:
            keys = [self.cache.key(version, "product", str(i)) for i in ids]
            views = await self.cache.get_decoded(keys, _read_product, weigh=_weight)
            for product_id, view in zip(ids, views, strict=True):
                if view is not None:
                    found[product_id] = view
        missing = [i for i in ids if i not in found]
        if missing:
            async with self.sessions() as session:
                rows = (
                    await session.execute(
                        select(Product, Category)
                        .join(Category, Product.category_id == Category.id)
                        .where(Product.id.in_(missing))
                    )
                ).all()
            loaded = {product.id: ProductView.of(product, category) for product, category in rows}
            found.update(loaded)
            if version is not None:
                await self.cache.set_decoded(
                    {
                        self.cache.key(version, "product", str(i)): (view.to_json(), view)
                        for i, view in loaded.items()
                    },
                    weigh=_weight,
                )
        return [found[i] for i in ids if i in found]

    # -- listing and search ------------------------------------------------------------------------------

    async def _page(
        self,
        caller: Caller | None,
        *,
        filter: ProductFilter,
        sort: str,
        page_size: int,
        page_token: str,
        search: _Search | None = None,
    ) -> ProductPage:
        if sort not in SORTS:
            raise InvalidArgument.field("sort", "is not a known sort")
        size = _page_size(page_size)
        if filter.include_archived and (caller is None or not caller.is_admin):
            raise PermissionDenied("only administrators may list archived products")
        # Validation that needs no database comes first: it must not wait for, or fill, the cache.
        min_price, max_price = self._price_bounds(filter)
        normalized = replace(
            filter,
            category_slug=filter.category_slug.strip(),
            min_price_minor=min_price,
            max_price_minor=max_price,
            min_price=None,
            max_price=None,
        )
        fingerprint = hashlib.sha256(
            orjson.dumps(
                {"sort": sort, "filter": asdict(normalized), "query": search.query if search else None},
                option=orjson.OPT_SORT_KEYS,
            )
        ).hexdigest()[:32]
        after = self._decode_cursor(page_token, fingerprint, sort) if page_token else None
        version = await self.cache.version()
        cache_key = ""
        if version is not None:
            digest = hashlib.sha256(f"{fingerprint}|{size}|{page_token}".encode()).hexdigest()
            cache_key = self.cache.key(version, "page", digest)
            (cached,) = await self.cache.get_decoded([cache_key], _read_page, weigh=_weight)
            if cached is not None:
                return cached
        async with self.sessions() as session, session.begin():
            conditions = await self._conditions(session, normalized)
            listing = _Listing(conditions, sort, size, fingerprint, after, search)
            page = await self._fetch(session, listing)
        if cache_key:
            await self.cache.set_decoded({cache_key: (page.to_json(), page)}, weigh=_weight)
        return page

    def _price_bounds(self, filter: ProductFilter) -> tuple[int | None, int | None]:
        violations = Violations()
        bounds: list[int | None] = []
        for name, minor, decimal in (
            ("min_price", filter.min_price_minor, filter.min_price),
            ("max_price", filter.max_price_minor, filter.max_price),
        ):
            field_name = f"filter.{name}"
            value = minor
            if decimal is not None:
                if minor is not None:
                    violations.add(field_name, f"give {name} or {name}_minor, not both")
                try:
                    value = to_minor(decimal.strip(), self.currency)
                except ValueError as exc:
                    violations.add(field_name, str(exc))
                    value = None
            if value is not None and value < 0:
                violations.add(field_name, "must not be negative")
            bounds.append(None if value is None else min(value, MAX_PRICE_FILTER))
        low, high = bounds
        if low is not None and high is not None and low > high:
            violations.add("filter.min_price", "must not be above max_price")
        violations.raise_if_any()
        return low, high

    async def _conditions(self, session: AsyncSession, filter: ProductFilter) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if not filter.include_archived:
            conditions.append(Product.archived_at.is_(None))
        if filter.category_slug:
            category = await self._category(session, filter.category_slug, "filter.category_slug")
            conditions.append(Product.category_id == category.id)
        if filter.min_price_minor is not None:
            conditions.append(Product.price_minor >= filter.min_price_minor)
        if filter.max_price_minor is not None:
            conditions.append(Product.price_minor <= filter.max_price_minor)
        if filter.in_stock_only:
            conditions.append(Product.stock > 0)
        if filter.featured_only:
            conditions.append(Product.featured.is_(True))
        return conditions

    def _decode_cursor(self, token: str, fingerprint: str, sort: str) -> list[Any]:
        values = self.cursors.decode(token, field="page_token")
        if values.get("k") != fingerprint:
            raise InvalidArgument.field("page_token", "belongs to another listing (filter, sort or query)")
        keys = _sort_keys(sort, literal(0.0))
        position = values.get("v")
        if not isinstance(position, list) or len(position) != len(keys):
            raise InvalidArgument.field("page_token", "is not a valid cursor")
        try:
            return [_decode_value(v, kind) for v, (_, _, kind) in zip(position, keys, strict=True)]
        except ValueError:
            raise InvalidArgument.field("page_token", "is not a valid cursor") from None

    async def _fetch(self, session: AsyncSession, listing: _Listing) -> ProductPage:
        conditions = list(listing.conditions)
        score: ColumnElement[float] | None = None
        if listing.search is not None:
            conditions.append(await self._matches(session, listing.search))
            score = self._score(listing.search)
        elif listing.sort == "RELEVANCE":
            raise InvalidArgument.field("sort", "RELEVANCE is for search only")
        keys = _sort_keys(listing.sort, score)
        total = await session.scalar(select(func.count()).select_from(Product).where(*conditions)) or 0
        query = (
            select(Product, Category, *(expr for expr, _, _ in keys))
            .join(Category, Product.category_id == Category.id)
            .where(*conditions)
            .order_by(*(expr.desc() if descending else expr.asc() for expr, descending, _ in keys))
            .limit(listing.page_size + 1)
        )
        if listing.after is not None:
            query = query.where(_after(keys, listing.after))
        rows = (await session.execute(query)).all()
        has_next_page = len(rows) > listing.page_size
        rows = rows[: listing.page_size]
        products = [ProductView.of(row[0], row[1]) for row in rows]
        cursors = [
            self.cursors.encode(
                {
                    "k": listing.fingerprint,
                    "v": [
                        _encode_value(value, kind) for value, (_, _, kind) in zip(row[2:], keys, strict=True)
                    ],
                }
            )
            for row in rows
        ]
        return ProductPage(products, cursors, has_next_page, total)

    async def _matches(self, session: AsyncSession, search: _Search) -> ColumnElement[bool]:
        # The threshold of pg_trgm's `%>` operator, for this transaction only.
        await session.execute(
            text("SELECT set_config('pg_trgm.word_similarity_threshold', :value, true)"),
            {"value": str(self.search_similarity_threshold)},
        )
        full_text = Product.search_vector.op("@@")(func.websearch_to_tsquery(ENGLISH, search.query))
        if not search.words:
            return full_text
        # Every word must be (nearly) a word of the name: "headph" and "hedphones" find Headphones.
        similar = and_(*(Product.name.op("%>")(word) for word in search.words))
        if search.excluded:
            # "-wired" excludes as it does in full text: websearch_to_tsquery('-wired') is '!wire'.
            similar = and_(
                similar, Product.search_vector.op("@@")(func.websearch_to_tsquery(ENGLISH, search.excluded))
            )
        return or_(full_text, similar)

    def _score(self, search: _Search) -> ColumnElement[float]:
        """Full-text rank of the weighted vector (name counts more), plus name similarity for the
        matches full text misses. Rank is normalised to [0, 1) so that neither part swamps the other."""
        rank = func.ts_rank_cd(Product.search_vector, func.websearch_to_tsquery(ENGLISH, search.query), 32)
        phrase = " ".join(search.words) or search.query
        return cast(rank + func.word_similarity(phrase, Product.name), Float)


# -- inventory -------------------------------------------------------------------------------------------


class Inventory:
    """Stock reservations for the order saga: all-or-nothing per order, never below zero.

    Every command for an order first takes that order's `stock_orders` row (insert or lock),
    which serialises commands of one order and remembers the first outcome for repeats.
    Stock rows are then updated in product-id order, so two orders never deadlock.
    """

    # The INT columns and the int32 quantities of the commands and answers.
    MAX_QUANTITY = 2**31 - 1

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        cache: CatalogCache,
        reservation_ttl: int,
        sweeper_batch_size: int = 100,
    ) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.cache = cache
        self.reservation_ttl = reservation_ttl
        self.sweeper_batch_size = sweeper_batch_size
        self.expired_total = 0

    async def reserve(
        self, session: AsyncSession, *, order_id: str, lines: Sequence[Line], reply_to: ReplyTo
    ) -> str:
        """ReserveStock: every line or none. Returns the outcome: RESERVED or REJECTED, or for a
        repeated command how the first one's reservation ended (EXPIRED, RELEASED)."""
        oid = uuid.UUID(order_id)
        first = await session.scalar(
            insert(StockOrder)
            .values(order_id=oid, status=RESERVED)
            .on_conflict_do_nothing(index_elements=["order_id"])
            .returning(StockOrder.order_id)
        )
        if first is None:
            return await self._replay_reservation(session, oid, reply_to)

        rejected: list[RejectedLine] = []
        merged: dict[str, int] = {}
        for product_id, quantity in lines:
            # Each line as sent: a line below one must not hide inside a valid total.
            if quantity < 1:
                rejected.append(RejectedLine(product_id, quantity, 0, "INVALID_QUANTITY"))
                continue
            merged[product_id] = merged.get(product_id, 0) + quantity
        wanted: list[tuple[uuid.UUID, int]] = []
        for product_id, quantity in merged.items():
            try:
                pid = uuid.UUID(product_id)
            except ValueError:
                rejected.append(RejectedLine(product_id, quantity, 0, "PRODUCT_NOT_FOUND"))
                continue
            if quantity > self.MAX_QUANTITY:
                # Lines adding up beyond what the stock column (or the answer) can hold.
                rejected.append(RejectedLine(product_id, self.MAX_QUANTITY, 0, "INVALID_QUANTITY"))
                continue
            wanted.append((pid, quantity))
        wanted.sort()

        taken: list[tuple[uuid.UUID, int, Any]] = []
        savepoint = await session.begin_nested()
        for pid, quantity in wanted:
            if rejected:
                # Already refused: only find out which other lines would fail, without locking.
                failure = await self._why_not(session, pid, quantity)
                if failure is not None:
                    rejected.append(failure)
                continue
            row = (
                await session.execute(
                    update(Product)
                    .where(Product.id == pid, Product.archived_at.is_(None), Product.stock >= quantity)
                    .values(stock=Product.stock - quantity, updated_at=func.now())
                    .returning(Product.stock, Product.low_stock_threshold, Product.sku, Product.name)
                )
            ).first()
            if row is None:
                failure = await self._why_not(session, pid, quantity)
                rejected.append(failure or RejectedLine(str(pid), quantity, 0, "INSUFFICIENT_STOCK"))
            else:
                taken.append((pid, quantity, row))

        if rejected or not wanted:
            await savepoint.rollback()
            stored = events.rejection(order_id, rejected)
            await session.execute(
                update(StockOrder)
                .where(StockOrder.order_id == oid)
                .values(status=REJECTED, rejection=stored, updated_at=func.now())
            )
            await self.outbox.add(session, events.stock_rejected(order_id, stored, reply_to))
            return REJECTED

        await savepoint.commit()
        expires_at = await session.scalar(select(func.now() + timedelta(seconds=self.reservation_ttl)))
        await session.execute(
            update(StockOrder)
            .where(StockOrder.order_id == oid)
            .values(status=RESERVED, expires_at=expires_at, updated_at=func.now())
        )
        session.add_all(
            Reservation(
                order_id=oid, product_id=pid, quantity=quantity, status=RESERVED, expires_at=expires_at
            )
            for pid, quantity, _ in taken
        )
        for pid, quantity, row in taken:
            await record_stock_change(
                self.outbox,
                session,
                product_id=str(pid),
                sku=row.sku,
                name=row.name,
                old=row.stock + quantity,
                new=row.stock,
                threshold=row.low_stock_threshold,
                cause="RESERVATION",
                order_id=order_id,
            )
        lines_out = [(str(pid), quantity) for pid, quantity, _ in taken]
        await self.outbox.add(session, events.stock_reserved(order_id, lines_out, expires_at, reply_to))
        self.cache.invalidate_after_commit(session)
        return RESERVED

    async def release(self, session: AsyncSession, *, order_id: str, reason: str, reply_to: ReplyTo) -> str:
        """ReleaseStock: give the order's units back, exactly once (also after CommitStock: a
        confirmed order that is cancelled). Returns the order's status afterwards."""
        oid = uuid.UUID(order_id)
        order = await session.get(StockOrder, oid, with_for_update=True)
        if order is None:
            # Nothing reserved. Remember the release, so that a late ReserveStock holds nothing.
            remembered = await session.scalar(
                insert(StockOrder)
                .values(order_id=oid, status=RELEASED, reason=reason)
                .on_conflict_do_nothing(index_elements=["order_id"])
                .returning(StockOrder.order_id)
            )
            if remembered is not None:
                await self.outbox.add(session, events.stock_released(order_id, [], reason, reply_to))
                return RELEASED
            # A concurrent command for this order (a duplicate release, or the reserve) came first.
            order = await session.get(StockOrder, oid, with_for_update=True)
            assert order is not None
        if order.status == RELEASED:
            lines = await self._lines(session, oid)
            await self.outbox.add(session, events.stock_released(order_id, lines, order.reason, reply_to))
            return RELEASED
        if order.status in (REJECTED, EXPIRED):
            await self.outbox.add(session, events.stock_released(order_id, [], reason, reply_to))
            return order.status
        lines = await self._restore(session, [oid], cause="RELEASE", new_status=RELEASED)
        order.status = RELEASED
        order.reason = reason
        order.updated_at = func.now()
        await self.outbox.add(session, events.stock_released(order_id, lines[oid], reason, reply_to))
        self.cache.invalidate_after_commit(session)
        return RELEASED

    async def commit(self, session: AsyncSession, *, order_id: str, reply_to: ReplyTo) -> str:
        """CommitStock: the order is paid; its units are sold and no longer expire. A reservation
        that already ended answers with how it ended, so the saga can compensate."""
        oid = uuid.UUID(order_id)
        order = await session.get(StockOrder, oid, with_for_update=True)
        if order is None:
            await self.outbox.add(
                session,
                events.stock_released(order_id, [], "nothing was reserved for this order", reply_to),
            )
            return RELEASED
        lines = await self._lines(session, oid)
        if order.status == RESERVED:
            await session.execute(
                update(Reservation)
                .where(Reservation.order_id == oid)
                .values(status=COMMITTED, updated_at=func.now())
            )
            order.status = COMMITTED
            order.updated_at = func.now()
            await self.outbox.add(session, events.stock_committed(order_id, lines, reply_to))
        elif order.status == COMMITTED:
            await self.outbox.add(session, events.stock_committed(order_id, lines, reply_to))
        elif order.status == EXPIRED:
            await self.outbox.add(
                session, events.reservation_expired(order_id, lines, order.updated_at, reply_to)
            )
        elif order.status == RELEASED:
            await self.outbox.add(session, events.stock_released(order_id, lines, order.reason, reply_to))
        else:
            assert order.rejection is not None
            await self.outbox.add(session, events.stock_rejected(order_id, order.rejection, reply_to))
        return order.status

    async def sweep(self) -> int:
        """Release reservations past their expiry; returns how many orders were released."""
        async with transaction(self.sessions) as session:
            expired = list(
                (
                    await session.scalars(
                        select(StockOrder)
                        .where(StockOrder.status == RESERVED, StockOrder.expires_at <= func.now())
                        .order_by(StockOrder.expires_at)
                        .limit(self.sweeper_batch_size)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            if not expired:
                return 0
            released = await self._restore(
                session, [o.order_id for o in expired], cause="EXPIRY", new_status=EXPIRED
            )
            now = await session.scalar(select(func.now()))
            assert now is not None
            for order in expired:
                order.status = EXPIRED
                order.updated_at = now
                order_id = str(order.order_id)
                await self.outbox.add(
                    session,
                    events.reservation_expired(
                        order_id, released[order.order_id], now, ReplyTo(correlation_id=order_id)
                    ),
                )
        self.expired_total += len(expired)
        log.info("released %d expired reservations", len(expired))
        await self.cache.invalidate()
        return len(expired)

    async def run_sweeper(self, interval: float) -> None:
        """The expiry loop: sweep, and sleep only when a sweep found less than a full batch."""
        while True:
            released = await self.sweep()
            if released < self.sweeper_batch_size:
                await asyncio.sleep(interval)

    # -- helpers ----------------------------------------------------------------------------------------

    async def _replay_reservation(self, session: AsyncSession, oid: uuid.UUID, reply_to: ReplyTo) -> str:
        """A repeated ReserveStock answers with what holds now, as CommitStock does: a reservation
        that has since expired or been released is not answered as reserved (the saga would take
        the payment, then have to refund it)."""
        order = await session.get(StockOrder, oid)
        assert order is not None
        order_id = str(oid)
        if order.status == REJECTED:
            assert order.rejection is not None
            await self.outbox.add(session, events.stock_rejected(order_id, order.rejection, reply_to))
            return REJECTED
        lines = await self._lines(session, oid)
        if order.status == EXPIRED:
            await self.outbox.add(
                session, events.reservation_expired(order_id, lines, order.updated_at, reply_to)
            )
            return EXPIRED
        if order.status == RELEASED:
            await self.outbox.add(session, events.stock_released(order_id, lines, order.reason, reply_to))
            return RELEASED
        # Held, or already sold to this order.
        await self.outbox.add(session, events.stock_reserved(order_id, lines, order.expires_at, reply_to))
        return RESERVED

    async def _why_not(self, session: AsyncSession, pid: uuid.UUID, quantity: int) -> RejectedLine | None:
        row = (
            await session.execute(select(Product.stock, Product.archived_at).where(Product.id == pid))
        ).first()
        if row is None:
            return RejectedLine(str(pid), quantity, 0, "PRODUCT_NOT_FOUND")
        if row.archived_at is not None:
            return RejectedLine(str(pid), quantity, row.stock, "PRODUCT_ARCHIVED")
        if row.stock < quantity:
            return RejectedLine(str(pid), quantity, row.stock, "INSUFFICIENT_STOCK")
        return None

    async def _lines(self, session: AsyncSession, oid: uuid.UUID) -> list[Line]:
        rows = (
            await session.execute(
                select(Reservation.product_id, Reservation.quantity)
                .where(Reservation.order_id == oid)
                .order_by(Reservation.product_id)
            )
        ).all()
        return [(str(pid), quantity) for pid, quantity in rows]

    async def _restore(
        self, session: AsyncSession, order_ids: list[uuid.UUID], *, cause: str, new_status: str
    ) -> dict[uuid.UUID, list[Line]]:
        """Put the held units of these orders back, locking products in id order across all of them."""
        held = (
            (
                await session.execute(
                    select(Reservation)
                    .where(Reservation.order_id.in_(order_ids), Reservation.status.in_((RESERVED, COMMITTED)))
                    .order_by(Reservation.product_id, Reservation.order_id)
                )
            )
            .scalars()
            .all()
        )
        restored: dict[uuid.UUID, list[Line]] = {oid: [] for oid in order_ids}
        for line in held:
            row = (
                await session.execute(
                    update(Product)
                    .where(Product.id == line.product_id)
                    .values(stock=Product.stock + line.quantity, updated_at=func.now())
                    .returning(Product.stock, Product.low_stock_threshold, Product.sku, Product.name)
                )
            ).one()
            await record_stock_change(
                self.outbox,
                session,
                product_id=str(line.product_id),
                sku=row.sku,
                name=row.name,
                old=row.stock - line.quantity,
                new=row.stock,
                threshold=row.low_stock_threshold,
                cause=cause,
                order_id=str(line.order_id),
            )
            line.status = new_status
            line.updated_at = func.now()
            restored[line.order_id].append((str(line.product_id), line.quantity))
        return restored
