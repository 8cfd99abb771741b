"""Reading orders: one order as its owner or an admin sees it, and the keyset-paged listings
(an account's own orders; every order, filtered, for an admin), newest first."""

from __future__ import annotations

import hmac
import uuid
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order import domain, queries
from order.checks import account_of
from order.models import Order
from servicekit import pages
from servicekit.auth import require_admin, require_caller
from servicekit.context import Caller
from servicekit.cursor import CursorCodec
from servicekit.db import snapshot
from servicekit.errors import InvalidArgument, NotFound
from servicekit.ids import parse_id

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_NOT_THIS_LISTINGS_CURSOR = "is not a valid cursor for this listing"


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
        size = pages.page_size(page_size, maximum=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)
        conditions: list[Any] = []
        if "a" in filters:
            conditions.append(Order.account_id == uuid.UUID(filters["a"]))
        if "s" in filters:
            conditions.append(Order.status == filters["s"])
        query = queries.with_details().where(*conditions).order_by(Order.created_at.desc(), Order.id.desc())
        scope = ("f", filters)
        if page_token:
            after = pages.position_after(
                self.cursors, page_token, scope=scope, invalid=_NOT_THIS_LISTINGS_CURSOR
            )
            query = query.where(tuple_(Order.created_at, Order.id) < after)
        async with snapshot(self.sessions) as session:
            rows = list((await session.scalars(query.limit(size + 1))).all())
            total = await session.scalar(select(func.count()).select_from(Order).where(*conditions)) or 0
        return pages.page_of(
            rows, size, total, lambda order: pages.position_cursor(self.cursors, order, scope=scope)
        )
