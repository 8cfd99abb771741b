"""Reading orders: one order as its owner or an admin sees it, and the keyset-paged listings
(an account's own orders, newest first; every order for an admin, filtered and sorted by when
it was placed or by its total)."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, exists, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order import domain, queries
from order.checks import account_of
from order.models import Order, OrderItem
from servicekit import pages
from servicekit.auth import require_admin, require_caller
from servicekit.context import Caller
from servicekit.cursor import CursorCodec
from servicekit.db import snapshot
from servicekit.errors import InvalidArgument, NotFound
from servicekit.ids import parse_id
from servicekit.text import has_control_characters

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_NOT_THIS_LISTINGS_CURSOR = "is not a valid cursor for this listing"
MAX_SEARCH_LENGTH = 100
MAX_EMAIL_LENGTH = 254
# Each sort: the column ordered by, and whether descending; ties are broken by the id.
SORTS: dict[str, tuple[Any, bool]] = {
    "PLACED_AT_DESC": (Order.created_at, True),
    "PLACED_AT_ASC": (Order.created_at, False),
    "TOTAL_DESC": (Order.total_minor, True),
    "TOTAL_ASC": (Order.total_minor, False),
}


@dataclass(frozen=True)
class OrderFilter:
    """An admin's conditions on the order listing; the empty ones do not filter."""

    status: str = ""
    account_id: str = ""
    email: str = ""
    placed_after: datetime | None = None
    placed_before: datetime | None = None
    search: str = ""


OrderPage = pages.Page[Order]


class OrderReads:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], cursor_secret: str) -> None:
        self.sessions = sessions
        self.cursors = CursorCodec(cursor_secret, purpose="orders")

    async def get_order(self, caller: Caller | None, *, order_id: str) -> Order:
        """The order if the caller may see it; another account's order is NOT_FOUND, like an unknown id."""
        caller = require_caller(caller)
        order = await queries.load(self.sessions, parse_id(order_id, "order_id"))
        if not caller.is_admin and str(order.account_id) != caller.account_id:
            raise NotFound("order not found")
        return order

    async def get_guest_order(self, *, order_id: str, email: str) -> Order:
        """A guest's order, for whoever knows its id and e-mail; any mismatch is NOT_FOUND."""
        try:
            order_uuid = uuid.UUID(order_id)
        except (ValueError, AttributeError, TypeError):
            raise NotFound("order not found") from None
        async with snapshot(self.sessions) as session:
            order = await session.scalar(queries.with_details().where(Order.id == order_uuid))
        known = (order.email or "") if order is not None and order.account_id is None else ""
        given = email.strip().lower()
        # Compared in constant time, and compared even for an unknown order.
        if not hmac.compare_digest(known.lower().encode(), given.encode()) or not known or order is None:
            raise NotFound("order not found")
        return order

    async def list_my_orders(self, caller: Caller | None, *, page_size: int, page_token: str) -> OrderPage:
        account_id = account_of(require_caller(caller))
        return await self._page(filters={"a": str(account_id)}, page_size=page_size, page_token=page_token)

    async def list_orders(
        self,
        caller: Caller | None,
        *,
        page_size: int,
        page_token: str,
        filter: OrderFilter = OrderFilter(),
        sort: str = "PLACED_AT_DESC",
    ) -> OrderPage:
        require_admin(caller)
        filters = _checked_filters(filter)
        if sort not in SORTS:
            raise InvalidArgument.field("sort", "is not a known order sort")
        if sort != "PLACED_AT_DESC":
            filters["o"] = sort
        return await self._page(filters=filters, page_size=page_size, page_token=page_token)

    async def _page(self, *, filters: dict[str, str], page_size: int, page_token: str) -> OrderPage:
        size = pages.page_size(page_size, maximum=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)
        conditions = _conditions(filters)
        column, descending = SORTS[filters.get("o", "PLACED_AT_DESC")]
        query = queries.with_details().where(*conditions)
        query = (
            query.order_by(column.desc(), Order.id.desc()) if descending else query.order_by(column, Order.id)
        )
        scope = ("f", filters)
        if page_token:
            key, after_id = pages.key_after(
                self.cursors, page_token, scope=scope, invalid=_NOT_THIS_LISTINGS_CURSOR
            )
            position = tuple_(column, Order.id)
            after = (_sort_key(column, key), after_id)
            query = query.where(position < after if descending else position > after)
        async with snapshot(self.sessions) as session:
            rows = list((await session.scalars(query.limit(size + 1))).all())
            total = await session.scalar(select(func.count()).select_from(Order).where(*conditions)) or 0

        def cursor(order: Order) -> str:
            key = order.total_minor if column is Order.total_minor else order.created_at.isoformat()
            return pages.key_cursor(self.cursors, key, order.id, scope=scope)

        return pages.page_of(rows, size, total, cursor)


def _sort_key(column: Any, key: Any) -> Any:
    """A cursor's sort key as the column's type; ValueError-free: a bad one is a bad cursor."""
    try:
        if column is Order.total_minor:
            if isinstance(key, bool) or not isinstance(key, int):
                raise TypeError(key)
            return key
        return datetime.fromisoformat(key)
    except (TypeError, ValueError):
        raise InvalidArgument.field("page_token", _NOT_THIS_LISTINGS_CURSOR) from None


def _checked_filters(filter: OrderFilter) -> dict[str, str]:
    """The filter as the plain values a cursor is bound to; InvalidArgument naming a bad one."""
    filters: dict[str, str] = {}
    if filter.status:
        try:
            filters["s"] = domain.Status(filter.status).value
        except ValueError:
            raise InvalidArgument.field("status", "is not a known order status") from None
    if filter.account_id:
        filters["a"] = str(parse_id(filter.account_id, "account_id"))
    if filter.email.strip():
        email = filter.email.strip().lower()
        if len(email) > MAX_EMAIL_LENGTH or has_control_characters(email):
            raise InvalidArgument.field(
                "email", f"must be an e-mail of at most {MAX_EMAIL_LENGTH} characters"
            )
        filters["e"] = email
    if filter.placed_after is not None:
        filters["pa"] = filter.placed_after.isoformat()
    if filter.placed_before is not None:
        filters["pb"] = filter.placed_before.isoformat()
    if filter.placed_after and filter.placed_before and filter.placed_after >= filter.placed_before:
        raise InvalidArgument.field("placed_before", "must be later than placed_after")
    search = filter.search.strip()
    if search:
        if len(search) > MAX_SEARCH_LENGTH:
            raise InvalidArgument.field("search", f"must be at most {MAX_SEARCH_LENGTH} characters")
        if has_control_characters(search):
            raise InvalidArgument.field("search", "must not contain control characters")
        filters["q"] = search.lower()
    return filters


def _conditions(filters: dict[str, str]) -> list[Any]:
    conditions: list[Any] = []
    if "a" in filters:
        conditions.append(Order.account_id == uuid.UUID(filters["a"]))
    if "s" in filters:
        conditions.append(Order.status == filters["s"])
    if "e" in filters:
        conditions.append(func.lower(Order.email) == filters["e"])
    if "pa" in filters:
        conditions.append(Order.created_at >= datetime.fromisoformat(filters["pa"]))
    if "pb" in filters:
        conditions.append(Order.created_at < datetime.fromisoformat(filters["pb"]))
    if "q" in filters:
        conditions.append(_search(filters["q"]))
    return conditions


def _search(text: str) -> Any:
    """An order whose id starts with `text`, or whose e-mail, shipping name, or a line's product
    name or SKU contains it, ignoring case. The text is a bound parameter with LIKE's wildcards
    escaped, so it matches only literally."""
    literal = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    contains = f"%{literal}%"
    return or_(
        cast(Order.id, String).like(f"{literal}%", escape="\\"),
        Order.email.ilike(contains, escape="\\"),
        Order.shipping_address["name"].astext.ilike(contains, escape="\\"),
        exists().where(
            OrderItem.order_id == Order.id,
            or_(OrderItem.name.ilike(contains, escape="\\"), OrderItem.sku.ilike(contains, escape="\\")),
        ),
    )
