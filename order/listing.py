"""Reading orders: one order as its owner or an admin sees it, and the keyset-paged listings
(an account's own orders; every order, filtered, for an admin), newest first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order import domain, queries
from order.checks import account_of, parse_id
from order.models import Order
from servicekit.auth import require_admin, require_caller
from servicekit.context import Caller
from servicekit.cursor import CursorCodec
from servicekit.db import snapshot
from servicekit.errors import InvalidArgument, NotFound

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    cursors: list[str]
    has_next_page: bool
    total_count: int


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

    async def list_my_orders(self, caller: Caller | None, *, page_size: int, page_token: str) -> OrderPage:
        account_id = account_of(require_caller(caller))
        return await self._page(filters={"a": str(account_id)}, page_size=page_size, page_token=page_token)

    async def list_orders(
        self, caller: Caller | None, *, status: str, account_id: str, page_size: int, page_token: str
    ) -> OrderPage:
        require_admin(caller)
        filters: dict[str, str] = {}
        if status:
            try:
                filters["s"] = domain.Status(status).value
            except ValueError:
                raise InvalidArgument.field("status", "is not a known order status") from None
        if account_id:
            filters["a"] = str(parse_id(account_id, "account_id"))
        return await self._page(filters=filters, page_size=page_size, page_token=page_token)

    async def _page(self, *, filters: dict[str, str], page_size: int, page_token: str) -> OrderPage:
        page_size = page_size or DEFAULT_PAGE_SIZE
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument.field("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
        conditions: list[Any] = []
        if "a" in filters:
            conditions.append(Order.account_id == uuid.UUID(filters["a"]))
        if "s" in filters:
            conditions.append(Order.status == filters["s"])
        query = queries.with_details().where(*conditions).order_by(Order.created_at.desc(), Order.id.desc())
        if page_token:
            position = self.cursors.decode(page_token, field="page_token")
            try:
                if position.get("f") != filters:
                    raise ValueError("cursor of another listing")
                after = (datetime.fromisoformat(position["c"]), uuid.UUID(position["i"]))
            except (KeyError, TypeError, ValueError):
                raise InvalidArgument.field("page_token", "is not a valid cursor for this listing") from None
            query = query.where(tuple_(Order.created_at, Order.id) < after)
        async with snapshot(self.sessions) as session:
            rows = list((await session.scalars(query.limit(page_size + 1))).all())
            total = await session.scalar(select(func.count()).select_from(Order).where(*conditions)) or 0
        has_next_page = len(rows) > page_size
        rows = rows[:page_size]
        cursors = [
            self.cursors.encode({"c": o.created_at.isoformat(), "i": str(o.id), "f": filters}) for o in rows
        ]
        return OrderPage(rows, cursors, has_next_page, total)
