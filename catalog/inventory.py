"""Inventory: the stock the order saga reserves, commits and releases, and the expiry of reservations."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog import messages
from catalog.cache import CatalogCache
from catalog.models import (
    COMMITTED,
    EXPIRED,
    REJECTED,
    RELEASED,
    RESERVED,
    Product,
    Reservation,
    StockOrder,
)
from catalog.views import Line, RejectedLine
from servicekit.changefeed import crosses_zero, stock_changed
from servicekit.db import transaction
from servicekit.messages import NO_CAUSE, Cause
from servicekit.outbox import Outbox

log = logging.getLogger(__name__)


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
        messages.stock_changed(
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
            messages.stock_low(product_id=product_id, sku=sku, name=name, stock=new, threshold=threshold),
        )


class Restored(dict[uuid.UUID, list[Line]]):
    """The lines put back, by order; `availability`: some product came back in stock."""

    availability: bool = False


@dataclass(kw_only=True, eq=False, slots=True)
class Inventory:
    """Stock reservations for the order saga: all-or-nothing per order, never below zero.

    Every command for an order first takes that order's `stock_orders` row (insert or lock),
    which serialises commands of one order and remembers the first outcome for repeats.
    Stock rows are then updated in product-id order, so two orders never deadlock.
    """

    # The INT columns and the int32 quantities of the commands and answers.
    MAX_QUANTITY = 2**31 - 1

    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    cache: CatalogCache
    reservation_ttl: int
    sweeper_batch_size: int = 100
    # What operators (and metrics) read.
    expired_total: int = field(default=0, init=False)

    async def reserve(
        self, session: AsyncSession, *, order_id: str, lines: Sequence[Line], cause: Cause
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
            return await self._replay_reservation(session, oid, cause)

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
            stored = messages.rejection(order_id, rejected)
            await session.execute(
                update(StockOrder)
                .where(StockOrder.order_id == oid)
                .values(status=REJECTED, rejection=stored, updated_at=func.now())
            )
            await self.outbox.add(session, messages.stock_rejected(order_id, stored, cause))
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
        await self.outbox.add(session, messages.stock_reserved(order_id, lines_out, expires_at, cause))
        self.cache.invalidate_after_commit(
            session,
            [str(pid) for pid, _, _ in taken],
            availability=any(row.stock == 0 for _, _, row in taken),
        )
        return RESERVED

    async def release(self, session: AsyncSession, *, order_id: str, reason: str, cause: Cause) -> str:
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
                await self.outbox.add(session, messages.stock_released(order_id, [], reason, cause))
                return RELEASED
            # A concurrent command for this order (a duplicate release, or the reserve) came first.
            order = await session.get(StockOrder, oid, with_for_update=True)
            assert order is not None
        if order.status == RELEASED:
            lines = await self._lines(session, oid)
            await self.outbox.add(session, messages.stock_released(order_id, lines, order.reason, cause))
            return RELEASED
        if order.status in (REJECTED, EXPIRED):
            await self.outbox.add(session, messages.stock_released(order_id, [], reason, cause))
            return order.status
        restored = await self._restore(session, [oid], cause="RELEASE", new_status=RELEASED)
        order.status = RELEASED
        order.reason = reason
        order.updated_at = func.now()
        await self.outbox.add(session, messages.stock_released(order_id, restored[oid], reason, cause))
        self.cache.invalidate_after_commit(
            session, [pid for pid, _ in restored[oid]], availability=restored.availability
        )
        return RELEASED

    async def commit(self, session: AsyncSession, *, order_id: str, cause: Cause) -> str:
        """CommitStock: the order is paid; its units are sold and no longer expire. A reservation
        that already ended answers with how it ended, so the saga can compensate."""
        oid = uuid.UUID(order_id)
        order = await session.get(StockOrder, oid, with_for_update=True)
        if order is None:
            await self.outbox.add(
                session,
                messages.stock_released(order_id, [], "nothing was reserved for this order", cause),
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
            await self.outbox.add(session, messages.stock_committed(order_id, lines, cause))
        elif order.status == COMMITTED:
            await self.outbox.add(session, messages.stock_committed(order_id, lines, cause))
        elif order.status == EXPIRED:
            await self.outbox.add(
                session, messages.reservation_expired(order_id, lines, order.updated_at, cause)
            )
        elif order.status == RELEASED:
            await self.outbox.add(session, messages.stock_released(order_id, lines, order.reason, cause))
        else:
            assert order.rejection is not None
            await self.outbox.add(session, messages.stock_rejected(order_id, order.rejection, cause))
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
                    messages.reservation_expired(order_id, released[order.order_id], now, NO_CAUSE),
                )
        self.expired_total += len(expired)
        log.info("released %d expired reservations", len(expired))
        await self.cache.invalidate(
            stock_changed(
                {pid for lines in released.values() for pid, _ in lines}, availability=released.availability
            )
        )
        return len(expired)

    async def run_sweeper(self, interval: float) -> None:
        """The expiry loop: sweep, and sleep only when a sweep found less than a full batch."""
        while True:
            released = await self.sweep()
            if released < self.sweeper_batch_size:
                await asyncio.sleep(interval)

    # -- helpers ----------------------------------------------------------------------------------------

    async def _replay_reservation(self, session: AsyncSession, oid: uuid.UUID, cause: Cause) -> str:
        """A repeated ReserveStock answers with what holds now, as CommitStock does: a reservation
        that has since expired or been released is not answered as reserved (the saga would take
        the payment, then have to refund it)."""
        order = await session.get(StockOrder, oid)
        assert order is not None
        order_id = str(oid)
        if order.status == REJECTED:
            assert order.rejection is not None
            await self.outbox.add(session, messages.stock_rejected(order_id, order.rejection, cause))
            return REJECTED
        lines = await self._lines(session, oid)
        if order.status == EXPIRED:
            await self.outbox.add(
                session, messages.reservation_expired(order_id, lines, order.updated_at, cause)
            )
            return EXPIRED
        if order.status == RELEASED:
            await self.outbox.add(session, messages.stock_released(order_id, lines, order.reason, cause))
            return RELEASED
        # Held, or already sold to this order.
        await self.outbox.add(session, messages.stock_reserved(order_id, lines, order.expires_at, cause))
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
    ) -> Restored:
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
        restored = Restored({oid: [] for oid in order_ids})
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
            restored.availability = restored.availability or crosses_zero(
                row.stock - line.quantity, row.stock
            )
            line.status = new_status
            line.updated_at = func.now()
            restored[line.order_id].append((str(line.product_id), line.quantity))
        return restored
