"""What administrators read of stock: one variant's inventory, and the variants running low."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog.models import RESERVED, Product, ProductVariant, Reservation
from catalog.validation import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from catalog.views import InventoryView, LowStockPage, VariantView
from servicekit import pages
from servicekit.auth import require_admin
from servicekit.context import Caller
from servicekit.cursor import CursorCodec
from servicekit.errors import InvalidArgument, NotFound
from servicekit.ids import parse_id

THRESHOLD = func.coalesce(ProductVariant.low_stock_threshold, Product.low_stock_threshold)


@dataclass(kw_only=True, eq=False, slots=True)
class StockLevels:
    sessions: async_sessionmaker[AsyncSession]
    cursors: CursorCodec

    async def inventory(self, caller: Caller | None, *, variant_id: str) -> InventoryView:
        """On hand = available + reserved (units held for orders not yet paid or released)."""
        require_admin(caller)
        vid = parse_id(variant_id, "variant_id")
        reserved = (
            select(func.coalesce(func.sum(Reservation.quantity), 0))
            .where(Reservation.variant_id == ProductVariant.id, Reservation.status == RESERVED)
            .scalar_subquery()
        )
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(
                        ProductVariant.product_id,
                        ProductVariant.sku,
                        ProductVariant.stock,
                        reserved,
                        THRESHOLD,
                    )
                    .join(Product, ProductVariant.product_id == Product.id)
                    .where(ProductVariant.id == vid)
                )
            ).first()
        if row is None:
            raise NotFound("variant not found")
        product_id, sku, available, held, threshold = row
        return InventoryView(
            variant_id=str(vid),
            product_id=str(product_id),
            sku=sku,
            on_hand=available + int(held),
            reserved=int(held),
            available=available,
            low_stock_threshold=threshold,
        )

    async def low_stock(self, caller: Caller | None, *, page_size: int, page_token: str) -> LowStockPage:
        """Active variants of active products at or under their non-zero threshold, lowest stock
        first (the id breaks ties)."""
        require_admin(caller)
        size = pages.page_size(page_size, maximum=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)
        after = self._after(page_token) if page_token else None
        conditions = [
            ProductVariant.archived_at.is_(None),
            Product.archived_at.is_(None),
            THRESHOLD > 0,
            ProductVariant.stock <= THRESHOLD,
        ]
        base = select(ProductVariant, Product).join(Product, ProductVariant.product_id == Product.id)
        async with self.sessions() as session:
            total = await session.scalar(
                select(func.count())
                .select_from(ProductVariant)
                .join(Product, ProductVariant.product_id == Product.id)
                .where(*conditions)
            )
            query = base.where(*conditions).order_by(ProductVariant.stock, ProductVariant.id).limit(size + 1)
            if after is not None:
                query = query.where(tuple_(ProductVariant.stock, ProductVariant.id) > tuple_(*after))
            rows, has_next_page = pages.split_page((await session.execute(query)).all(), size)
        return LowStockPage(
            variants=[(product.name, VariantView.of(variant, product)) for variant, product in rows],
            cursors=[self.cursors.encode({"s": v.stock, "i": str(v.id)}) for v, _ in rows],
            has_next_page=has_next_page,
            total_count=total or 0,
        )

    def _after(self, token: str) -> tuple[int, uuid.UUID]:
        values = self.cursors.decode(token, field="page_token")
        try:
            stock = values["s"]
            if not isinstance(stock, int) or isinstance(stock, bool):
                raise TypeError("not a stock")
            return stock, uuid.UUID(values["i"])
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument.field("page_token", pages.NOT_A_CURSOR) from None
