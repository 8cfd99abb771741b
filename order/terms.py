"""The shop's terms every cart is priced with: its shipping methods and tax rates, remembered in
the process (`servicekit.remembered`).

Every cart shown (each change of a cart, each checkout) prices its shipping and tax; the terms
change rarely, by an administrator's hand (`Shop`), the demo seed or an operator's SQL. Whatever
changes them, a statement trigger on both tables (migration 0006) announces it on `TERMS_CHANNEL`
in the changing transaction: every process hears it once committed and reads the terms again for
its next cart. The process that made the change forgets at once (`Shop`). While a process cannot
listen, it reads them for every cart, as it did before they were remembered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order.models import ShippingMethod, TaxRate
from servicekit.db import reads
from servicekit.remembered import Remembered

TERMS_CHANNEL = "order_shop_terms"


@dataclass(frozen=True)
class Terms:
    # Every shipping method, cheapest first. Read-only: shared by every cart priced meanwhile.
    methods: tuple[ShippingMethod, ...]
    # Tax rates by country code.
    rates: Mapping[str, Decimal]


class ShopTerms(Remembered[Terms]):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(self._read_terms, channel=TERMS_CHANNEL, name="shop terms")
        self.sessions = sessions

    async def _read_terms(self) -> Terms:
        async with reads(self.sessions) as session:
            methods = await session.scalars(
                select(ShippingMethod).order_by(ShippingMethod.price_minor, ShippingMethod.code)
            )
            rates = await session.execute(select(TaxRate.country, TaxRate.rate))
            return Terms(methods=tuple(methods.all()), rates={country: rate for country, rate in rates})
