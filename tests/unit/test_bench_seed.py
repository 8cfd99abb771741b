"""The benchmark's catalog: every tenth product in sizes and colours, its variants named, keyed and
searchable exactly as the catalog makes them, and checkout ordering only products of one variant."""

from __future__ import annotations

import uuid

import orjson
from sqlalchemy import Table

from bench.seed import CHECKOUT_POOL, VARIANT_EVERY, _product_rows
from catalog.models import Product, ProductVariant
from catalog.variant_rules import clean_options, search_terms, variant_name
from servicekit.errors import Violations


def writable(table: Table) -> dict[str, bool]:
    """The columns the seeder fills, as it reads them from the database (no computed ones)."""
    return {c.name: False for c in table.columns if c.computed is None}


PRODUCT_COLUMNS = writable(Product.__table__)  # type: ignore[arg-type]
VARIANT_COLUMNS = writable(ProductVariant.__table__)  # type: ignore[arg-type]


def seeded(count: int) -> tuple[list[dict], list[dict], list[str]]:
    rows, _, checkout = _product_rows(
        count,
        {"clothing": uuid.uuid4(), "books": uuid.uuid4()},
        {"products": PRODUCT_COLUMNS, "product_variants": VARIANT_COLUMNS},
    )
    products = [dict(zip(PRODUCT_COLUMNS, row, strict=True)) for row in rows["products"]]
    variants = [dict(zip(VARIANT_COLUMNS, row, strict=True)) for row in rows["product_variants"]]
    return products, variants, checkout


def test_every_tenth_product_has_a_variant_per_size_and_colour_as_the_catalog_makes_them() -> None:
    products, variants, _ = seeded(1_000)

    with_options = [p for p in products if orjson.loads(p["option_groups"])]
    assert len(with_options) == 1_000 // VARIANT_EVERY
    for product in products:
        groups = orjson.loads(product["option_groups"])
        own = sorted((v for v in variants if v["product_id"] == product["id"]), key=lambda v: v["position"])
        options = [orjson.loads(v["options"]) for v in own]
        assert len(own) == (6 if groups else 1)
        for variant, chosen in zip(own, options, strict=True):
            violations = Violations()
            cleaned, key = clean_options(
                [(o["group"], o["value"]) for o in chosen], groups, "options", violations
            )
            assert not violations.items
            assert (cleaned, key, variant["name"]) == (chosen, variant["options_key"], variant_name(chosen))
        assert len({v["options_key"] for v in own}) == len(own)
        assert product["variant_terms"].split() == search_terms([v["sku"] for v in own], options).split()
        if not groups:
            assert own[0]["sku"] == product["sku"]
    assert len({v["sku"] for v in variants}) == len(variants)


def test_checkout_orders_only_single_variant_products_and_fills_its_pool() -> None:
    products, variants, checkout = seeded(CHECKOUT_POOL + 100)

    counts = {p["id"]: sum(v["product_id"] == p["id"] for v in variants) for p in products}
    assert len(checkout) == CHECKOUT_POOL
    assert all(counts[uuid.UUID(pid)] == 1 for pid in checkout)
