"""Reading payments: one by id, an order's payments, a batch by order ids. A customer sees only
their own payments; an admin sees all."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, false, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment.models import Payment
from servicekit.auth import require_caller
from servicekit.context import Caller
from servicekit.errors import InvalidArgument, NotFound, Violations
from servicekit.ids import parse_canonical_id

MAX_BATCH = 100


class PaymentReads:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def get_payment(self, caller: Caller | None, *, payment_id: str) -> Payment:
        caller = require_caller(caller)
        pid = parse_canonical_id(payment_id, "payment_id")
        async with self.sessions() as session:
            payment = await session.scalar(self._visible(select(Payment).where(Payment.id == pid), caller))
        if payment is None:
            raise NotFound("payment not found")
        return payment

    async def list_payments(self, caller: Caller | None, *, order_id: str) -> list[Payment]:
        caller = require_caller(caller)
        oid = parse_canonical_id(order_id, "order_id")
        async with self.sessions() as session:
            rows = await session.scalars(
                self._visible(select(Payment).where(Payment.order_id == oid), caller).order_by(
                    Payment.created_at, Payment.id
                )
            )
            return list(rows)

    async def batch_by_order(self, caller: Caller | None, *, order_ids: Sequence[str]) -> list[Payment]:
        caller = require_caller(caller)
        if len(order_ids) > MAX_BATCH:
            raise InvalidArgument.field("order_ids", f"must hold at most {MAX_BATCH} ids")
        violations = Violations()
        wanted: set[uuid.UUID] = set()
        for index, value in enumerate(order_ids):
            try:
                wanted.add(parse_canonical_id(value, f"order_ids[{index}]"))
            except InvalidArgument as exc:
                violations.items.extend(exc.violations)
        violations.raise_if_any()
        if not wanted:
            return []
        async with self.sessions() as session:
            rows = await session.scalars(
                self._visible(select(Payment).where(Payment.order_id.in_(wanted)), caller)
            )
            return list(rows)

    @staticmethod
    def _visible(statement: Select[Any], caller: Caller) -> Select[Any]:
        """A customer sees only their own payments; ADMIN sees all."""
        if caller.is_admin:
            return statement
        try:
            owner = uuid.UUID(caller.account_id)
        except ValueError:
            return statement.where(false())
        return statement.where(Payment.account_id == owner)
