"""The transitions people ask for: a customer or an admin cancels, an admin ships and delivers.
Each is a saga event decided under the order's row lock; a status that forbids it is CONFLICT."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order import domain, queries
from order.models import Order
from order.saga import Saga, lock
from servicekit.auth import require_admin, require_caller
from servicekit.context import Caller
from servicekit.db import transaction
from servicekit.errors import InvalidArgument, NotFound
from servicekit.ids import parse_id
from servicekit.text import has_control_characters

MAX_NOTE_LENGTH = 500


class Transitions:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], saga: Saga) -> None:
        self.sessions = sessions
        self.saga = saga

    async def cancel_order(self, caller: Caller | None, *, order_id: str, note: str = "") -> Order:
        """The owner or an admin cancels; to anyone else the order is NOT_FOUND."""
        caller = require_caller(caller)
        note = note.strip()
        if len(note) > MAX_NOTE_LENGTH or has_control_characters(note):
            raise InvalidArgument.field("note", f"must be at most {MAX_NOTE_LENGTH} printable characters")
        order_uuid = parse_id(order_id, "order_id")
        async with transaction(self.sessions) as session:
            row = await lock(session, order_uuid)
            if row is None or (not caller.is_admin and str(row.account_id) != caller.account_id):
                raise NotFound("order not found")
            by_owner = str(row.account_id) == caller.account_id
            event = domain.CancelRequested(by=caller.account_id, by_owner=by_owner, note=note)
            await self.saga.decide(session, row, event)
        return await queries.load(self.sessions, order_uuid)

    async def ship_order(self, caller: Caller | None, *, order_id: str) -> Order:
        caller = require_admin(caller)
        return await self._admin_transition(order_id, domain.ShipRequested(by=caller.account_id))

    async def deliver_order(self, caller: Caller | None, *, order_id: str) -> Order:
        caller = require_admin(caller)
        return await self._admin_transition(order_id, domain.DeliverRequested(by=caller.account_id))

    async def _admin_transition(self, order_id: str, event: domain.Event) -> Order:
        order_uuid = parse_id(order_id, "order_id")
        async with transaction(self.sessions) as session:
            row = await lock(session, order_uuid)
            if row is None:
                raise NotFound("order not found")
            await self.saga.decide(session, row, event)
        return await queries.load(self.sessions, order_uuid)
