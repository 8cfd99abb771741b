"""Listing and search: filtered, sorted pages of products, resumed by keyset cursors.

A cursor holds the sort keys of the last product of a page, signed, with a fingerprint of the
listing (filter, sort and query): it resumes only the listing it came from. Pages are cached
under the catalog's listing version, so a write, or any product's stock change, makes every
cached page unreachable at once.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Float,
    SQLColumnExpression,
    and_,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog.cache import CatalogCache
from catalog.loading import product_views
from catalog.models import Category, Product, ProductVariant
from catalog.validation import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_SLUG_LENGTH, SLUG, WORD
from catalog.views import ProductPage, read_page, weight
from servicekit import pages
from servicekit.context import Caller
from servicekit.cursor import CursorCodec
from servicekit.errors import InvalidArgument, PermissionDenied, Violations
from servicekit.money import to_minor

SORTS = ("NEWEST", "PRICE_ASC", "PRICE_DESC", "NAME", "RELEVANCE")
# Price filters beyond any price are clamped, so that they never overflow BIGINT.
MAX_PRICE_FILTER = 10**15
MAX_SEARCH_WORDS = 8

ENGLISH = cast(literal("english"), REGCONFIG)

# (expression, descending, cursor type) of one sort key.
SortKey = tuple[SQLColumnExpression[Any], bool, str]


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
class Search:
    query: str
    # What trigram matching looks for in names, and the excluded (-word) part of the query.
    words: list[str] = field(default_factory=list)
    excluded: str = ""


@dataclass
class _Listing:
    """A validated listing request: what to match, in which order, from where."""

    conditions: list[ColumnElement[bool]]
    sort: str
    page_size: int
    fingerprint: str
    after: list[Any] | None = None
    search: Search | None = None


def search_terms(query: str) -> Search:
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
    return Search(query=query, words=words[:MAX_SEARCH_WORDS], excluded=" ".join(excluded))


async def category_by_slug(session: AsyncSession, slug: str, field_name: str) -> Category:
    """The category with this slug; InvalidArgument on `field_name` when there is none."""
    # No category has a slug outside the slug pattern; such a slug (a NUL in it, say, which
    # PostgreSQL refuses in text) is not looked up.
    if len(slug) > MAX_SLUG_LENGTH or not SLUG.fullmatch(slug):
        raise InvalidArgument.field(field_name, "no category has this slug")
    category = await session.scalar(select(Category).where(Category.slug == slug))
    if category is None:
        raise InvalidArgument.field(field_name, "no category has this slug")
    return category


def _sort_keys(sort: str, score: ColumnElement[float] | None) -> list[SortKey]:
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


def _after(keys: list[SortKey], values: list[Any]) -> ColumnElement[bool]:
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


@dataclass(kw_only=True, eq=False, slots=True)
class ProductListing:
    """Pages of products for a filter and a sort, or for a search query; cached, and resumable."""

    sessions: async_sessionmaker[AsyncSession]
    cache: CatalogCache
    cursors: CursorCodec
    currency: str
    search_similarity_threshold: float

    async def page(
        self,
        caller: Caller | None,
        *,
        filter: ProductFilter,
        sort: str,
        page_size: int,
        page_token: str,
        search: Search | None = None,
    ) -> ProductPage:
        if sort not in SORTS:
            raise InvalidArgument.field("sort", "is not a known sort")
        size = pages.page_size(page_size, maximum=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)
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
        version = await self.cache.listing_version()
        cache_key = ""
        if version is not None:
            digest = hashlib.sha256(f"{fingerprint}|{size}|{page_token}".encode()).hexdigest()
            cache_key = self.cache.key(version, "page", digest)
            (cached,) = await self.cache.get_decoded([cache_key], read_page, weigh=weight)
            if cached is not None:
                return cached
        async with self.sessions() as session, session.begin():
            conditions = await self._conditions(session, normalized)
            listing = _Listing(conditions, sort, size, fingerprint, after, search)
            page = await self._fetch(session, listing)
        if cache_key:
            await self.cache.set_decoded({cache_key: (page.to_json(), page)}, weigh=weight)
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
            category = await category_by_slug(session, filter.category_slug, "filter.category_slug")
            conditions.append(Product.category_id == category.id)
        if filter.min_price_minor is not None:
            conditions.append(Product.price_minor >= filter.min_price_minor)
        if filter.max_price_minor is not None:
            conditions.append(Product.price_minor <= filter.max_price_minor)
        if filter.in_stock_only:
            conditions.append(
                select(ProductVariant.id)
                .where(ProductVariant.product_id == Product.id, ProductVariant.stock > 0)
                .exists()
            )
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
        rows, has_next_page = pages.split_page((await session.execute(query)).all(), listing.page_size)
        products = await product_views(session, [(row[0], row[1]) for row in rows])
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

    async def _matches(self, session: AsyncSession, search: Search) -> ColumnElement[bool]:
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

    def _score(self, search: Search) -> ColumnElement[float]:
        """Full-text rank of the weighted vector (name counts more), plus name similarity for the
        matches full text misses. Rank is normalised to [0, 1) so that neither part swamps the other."""
        rank = func.ts_rank_cd(Product.search_vector, func.websearch_to_tsquery(ENGLISH, search.query), 32)
        phrase = " ".join(search.words) or search.query
        return cast(rank + func.word_similarity(phrase, Product.name), Float)
