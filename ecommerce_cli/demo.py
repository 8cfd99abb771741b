"""The demo data: the catalog's products and the shop's terms (shipping methods, tax rates, a
sample coupon), loaded by `ecommerce seed` and, once, by the first start of `ecommerce dev`.
`ecommerce serve` never loads them. Each service's own code writes its part."""

from __future__ import annotations

import importlib
from typing import Any


def demo_currency() -> str:
    """The catalog's currency (CATALOG_CURRENCY): the demo shipping prices are in it, like the products."""
    return str(importlib.import_module("catalog.settings").CatalogSettings().currency).upper()


def shop_terms(terms: Any) -> str:
    """ "2 shipping methods, 4 tax rates and 1 coupon" """
    counts = [
        (terms.shipping_methods, "shipping method"),
        (terms.tax_rates, "tax rate"),
        (terms.coupons, "coupon"),
    ]
    said = [f"{n} {what}{'' if n == 1 else 's'}" for n, what in counts]
    return f"{said[0]}, {said[1]} and {said[2]}"


async def seed_first_start(urls: dict[str, str], redis_url: str) -> None:
    """The demo catalog when the catalog is still empty; the shop's terms when the order service
    has none yet (`urls`: the database of each service started)."""
    if "catalog" in urls:
        catalog = importlib.import_module("catalog.__main__")
        seeded = await catalog.seed(only_if_empty=True, database_url=urls["catalog"], redis_url=redis_url)
        if seeded is not None:
            print(
                f"Loaded the demo catalog: {seeded.products} products in {seeded.categories} categories.",
                flush=True,
            )
    if "order" in urls:
        order = importlib.import_module("order.__main__")
        terms = await order.seed(
            currency=demo_currency(), only_if_empty=True, database_url=urls["order"], redis_url=redis_url
        )
        if terms is not None:
            print(f"Loaded the demo shop: {shop_terms(terms)}.", flush=True)


async def seed_all(catalog_url: str, order_url: str, redis_url: str) -> None:
    """`ecommerce seed`: add whatever demo data is missing; what is there already is kept."""
    catalog = importlib.import_module("catalog.__main__")
    seeded = await catalog.seed(database_url=catalog_url, redis_url=redis_url)
    print(
        f"Demo catalog loaded: {seeded.products} products and {seeded.categories} categories added "
        "(what was there already is kept)."
    )
    order = importlib.import_module("order.__main__")
    terms = await order.seed(currency=demo_currency(), database_url=order_url, redis_url=redis_url)
    print(f"Demo shop loaded: {shop_terms(terms)} added (what was there already is kept).")
