"""Inventory: the stock the order saga reserves, commits and releases, and the expiry of reservations."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
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
    ProductVariant,
    Reservation,
    StockOrder,
)
from catalog.views import Line, RejectedLine, StockMove
from servicekit.changefeed import crosses_zero, stock_changed
from servicekit.db import transaction
from servicekit.messages import NO_CAUSE, Cause
from servicekit.outbox import Outbox

log = logging.getLogger(__name__)


def _crossed_threshold(old: int, new: int, threshold: int) -> bool:
    """Stock fell to or below its threshold with this change (once per crossing)."""
    return threshold > 0 and old > threshold >= new


# What an UPDATE of a variant's stock returns, for its StockMove.
MOVED = (
    ProductVariant.product_id,
    ProductVariant.id,
    ProductVariant.stock,
    func.coalesce(ProductVariant.low_stock_threshold, Product.low_stock_threshold).label("threshold"),
    ProductVariant.sku,
    Product.name,
    ProductVariant.name.label("variant_name"),
)


def moved(row: Any, delta: int) -> StockMove:
    """The StockMove of a MOVED row whose stock changed by delta."""
    return StockMove(
        product_id=str(row.product_id),
        variant_id=str(row.id),
        sku=row.sku,
        name=row.name,
        variant_name=row.variant_name,
        old=row.stock - delta,
        new=row.stock,
        threshold=row.threshold,
    )


async def record_stock_change(
    outbox: Outbox,
    session: AsyncSession,
    move: StockMove,
    *,
    cause: str,
    order_id: str = "",
    changed_by: str = "",
    reason: str = "",
) -> None:
    """catalog.stock_changed for every change, and catalog.stock_low when it crosses the threshold."""
    await outbox.add(
        session,
        messages.stock_changed(move, cause=cause, order_id=order_id, changed_by=changed_by, reason=reason),
    )
    if _crossed_threshold(move.old, move.new, move.threshold):
        await outbox.add(session, messages.stock_low(move))


class Restored(dict[uuid.UUID, list[Line]]):
    """The lines put back, by order; `availability`: some variant came back in stock (its product may
    have been out of stock: listings that filter on it change)."""

    availability: bool = False


@dataclass(kw_only=True, eq=False, slots=True)
class Inventory:
    """Stock reservations for the order saga: all-or-nothing per order, never below zero.

    Every command for an order first takes that order's `stock_orders` row (insert or lock),
    which serialises commands of one order and remembers the first outcome for repeats.
    Stock rows (one per variant) are then updated in variant-id order, so two orders never deadlock.
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
        wanted = await self._resolve(session, lines, rejected)

        taken: list[tuple[uuid.UUID, int, StockMove]] = []
        # Lines taken before one that fails are given back by rolling back to here; a single line
        # that fails has changed nothing (the common order: no savepoint, two statements fewer).
        savepoint = await session.begin_nested() if len(wanted) > 1 else None
        for (pid, vid), quantity in wanted:
            if rejected:
                # Already refused: only find out which other lines would fail, without locking.
                failure = await self._why_not(session, pid, vid, quantity)
                if failure is not None:
                    rejected.append(failure)
                continue
            row = (
                await session.execute(
                    update(ProductVariant)
                    .where(
                        ProductVariant.id == vid,
                        ProductVariant.archived_at.is_(None),
                        ProductVariant.product_id == Product.id,
                        Product.archived_at.is_(None),
                        ProductVariant.stock >= quantity,
                    )
                    .values(stock=ProductVariant.stock - quantity, updated_at=func.now())
                    .returning(*MOVED)
                    .execution_options(synchronize_session=False)
                )
            ).first()
            if row is None:
                failure = await self._why_not(session, pid, vid, quantity)
                rejected.append(
                    failure or RejectedLine(str(pid), quantity, 0, "INSUFFICIENT_STOCK", str(vid))
                )
            else:
                taken.append((pid, quantity, moved(row, -quantity)))

        if rejected or not wanted:
            if savepoint is not None:
                await savepoint.rollback()
            stored = messages.rejection(order_id, rejected)
            await session.execute(
                update(StockOrder)
                .where(StockOrder.order_id == oid)
                .values(status=REJECTED, rejection=stored, updated_at=func.now())
                .execution_options(synchronize_session=False)
            )
            await self.outbox.add(session, messages.stock_rejected(order_id, stored, cause))
            return REJECTED

        if savepoint is not None:
            await savepoint.commit()
        expires_at = await session.scalar(
            update(StockOrder)
            .where(StockOrder.order_id == oid)
            .values(
                status=RESERVED,
                expires_at=func.now() + timedelta(seconds=self.reservation_ttl),
                updated_at=func.now(),
            )
            .returning(StockOrder.expires_at)
            .execution_options(synchronize_session=False)
        )
        assert expires_at is not None  # the row this transaction inserted above
        session.add_all(
            Reservation(
                order_id=oid,
                product_id=pid,
                variant_id=uuid.UUID(move.variant_id),
                quantity=quantity,
                status=RESERVED,
                expires_at=expires_at,
            )
            for pid, quantity, move in taken
        )
        for _, _, move in taken:
            await record_stock_change(self.outbox, session, move, cause="RESERVATION", order_id=order_id)
        lines_out = [Line(str(pid), quantity, move.variant_id) for pid, quantity, move in taken]
        await self.outbox.add(session, messages.stock_reserved(order_id, lines_out, expires_at, cause))
        self.cache.invalidate_after_commit(
            session,
            [str(pid) for pid, _, _ in taken],
            availability=any(move.new == 0 for _, _, move in taken),
        )
        return RESERVED

    async def _resolve(
        self, session: AsyncSession, lines: Sequence[Line], rejected: list[RejectedLine]
    ) -> list[tuple[tuple[uuid.UUID, uuid.UUID], int]]:
        """The variant of every line, merged, in variant-id order (the order stock rows are locked in,
        so that two orders never deadlock). A line without a variant means the product's only one;
        lines that cannot be resolved are added to `rejected`."""
        valid: list[tuple[Line, uuid.UUID | None, uuid.UUID | None]] = []
        for line in lines:
            # Each line as sent: a line below one must not hide inside a valid total.
            if line.quantity < 1:
                rejected.append(
                    RejectedLine(line.product_id, line.quantity, 0, "INVALID_QUANTITY", line.variant_id)
                )
                continue
            pid = _uuid(line.product_id)
            vid = _uuid(line.variant_id)
            if pid is None and vid is None:
                reason = "VARIANT_NOT_FOUND" if line.variant_id else "PRODUCT_NOT_FOUND"
                rejected.append(RejectedLine(line.product_id, line.quantity, 0, reason, line.variant_id))
                continue
            valid.append((line, pid, vid))
        products = {pid for _, pid, vid in valid if vid is None and pid is not None}
        named = {vid for _, _, vid in valid if vid is not None}
        variants: dict[uuid.UUID, uuid.UUID] = {}  # variant -> product
        by_product: dict[uuid.UUID, list[uuid.UUID]] = {}
        if products or named:
            for vid, pid in (
                await session.execute(
                    select(ProductVariant.id, ProductVariant.product_id).where(
                        or_(ProductVariant.product_id.in_(products), ProductVariant.id.in_(named)),
                        ProductVariant.archived_at.is_(None),
                    )
                )
            ).all():
                variants[vid] = pid
                by_product.setdefault(pid, []).append(vid)
        merged: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
        for line, pid, vid in valid:
            if vid is None:
                assert pid is not None
                choices = by_product.get(pid, [])
                if len(choices) != 1:
                    reason = "VARIANT_REQUIRED" if choices else "PRODUCT_NOT_FOUND"
                    rejected.append(RejectedLine(line.product_id, line.quantity, 0, reason))
                    continue
                vid = choices[0]
            owner = variants.get(vid)
            if owner is None or (pid is not None and owner != pid):
                rejected.append(
                    RejectedLine(line.product_id, line.quantity, 0, "VARIANT_NOT_FOUND", line.variant_id)
                )
                continue
            key = (owner, vid)
            merged[key] = merged.get(key, 0) + line.quantity
        wanted: list[tuple[tuple[uuid.UUID, uuid.UUID], int]] = []
        for (pid, vid), quantity in merged.items():
            if quantity > self.MAX_QUANTITY:
                # Lines adding up beyond what the stock column (or the answer) can hold.
                rejected.append(RejectedLine(str(pid), self.MAX_QUANTITY, 0, "INVALID_QUANTITY", str(vid)))
                continue
            wanted.append(((pid, vid), quantity))
        wanted.sort(key=lambda item: item[0][1])
        return wanted

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
            session, [line.product_id for line in restored[oid]], availability=restored.availability
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
                .execution_options(synchronize_session=False)
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
                {line.product_id for lines in released.values() for line in lines},
                availability=released.availability,
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

    async def _why_not(
        self, session: AsyncSession, pid: uuid.UUID, vid: uuid.UUID, quantity: int
    ) -> RejectedLine | None:
        row = (
            await session.execute(
                select(ProductVariant.stock, Product.archived_at)
                .join(Product, ProductVariant.product_id == Product.id)
                .where(ProductVariant.id == vid, ProductVariant.archived_at.is_(None))
            )
        ).first()
        if row is None:
            return RejectedLine(str(pid), quantity, 0, "VARIANT_NOT_FOUND", str(vid))
        if row.archived_at is not None:
            return RejectedLine(str(pid), quantity, row.stock, "PRODUCT_ARCHIVED", str(vid))
        if row.stock < quantity:
            return RejectedLine(str(pid), quantity, row.stock, "INSUFFICIENT_STOCK", str(vid))
        return None

    async def _lines(self, session: AsyncSession, oid: uuid.UUID) -> list[Line]:
        rows = (
            await session.execute(
                select(Reservation.product_id, Reservation.quantity, Reservation.variant_id)
                .where(Reservation.order_id == oid)
                .order_by(Reservation.product_id, Reservation.variant_id)
            )
        ).all()
        return [Line(str(pid), quantity, str(vid)) for pid, quantity, vid in rows]

    async def _restore(
        self, session: AsyncSession, order_ids: list[uuid.UUID], *, cause: str, new_status: str
    ) -> Restored:
        """Put the held units of these orders back, locking variants in id order across all of them."""
        held = (
            (
                await session.execute(
                    select(Reservation)
                    .where(Reservation.order_id.in_(order_ids), Reservation.status.in_((RESERVED, COMMITTED)))
                    .order_by(Reservation.variant_id, Reservation.order_id)
                )
            )
            .scalars()
            .all()
        )
        restored = Restored({oid: [] for oid in order_ids})
        for line in held:
            row = (
                await session.execute(
                    update(ProductVariant)
                    .where(ProductVariant.id == line.variant_id, ProductVariant.product_id == Product.id)
                    .values(stock=ProductVariant.stock + line.quantity, updated_at=func.now())
                    .returning(*MOVED)
                    .execution_options(synchronize_session=False)
                )
            ).one()
            await record_stock_change(
                self.outbox, session, moved(row, line.quantity), cause=cause, order_id=str(line.order_id)
            )
            restored.availability = restored.availability or crosses_zero(
                row.stock - line.quantity, row.stock
            )
            line.status = new_status
            line.updated_at = func.now()
            restored[line.order_id].append(Line(str(line.product_id), line.quantity, str(line.variant_id)))
        for lines in restored.values():
            lines.sort()
        return restored


def _uuid(value: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
