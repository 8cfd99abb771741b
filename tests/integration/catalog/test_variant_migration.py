"""The variants migration turns a populated catalog into products with one default variant each,
losing nothing: ids, SKUs, prices, stock, thresholds and the reservations in flight."""

from __future__ import annotations

import uuid

from servicekit.db import create_engine, database_url, ensure_database, session_factory
from servicekit.migrations import upgrade_async
from tests.integration import harness


async def test_every_product_becomes_one_default_variant_with_its_stock_and_reservations(infra):
    url = database_url(infra.postgres_url, f"catalog_variants_{uuid.uuid4().hex[:8]}")
    await ensure_database(url)
    await upgrade_async("catalog", url, "0001")
    engine = create_engine(url, pool_size=1)
    sessions = session_factory(engine)
    category, lamp, chair, order = (uuid.uuid4() for _ in range(4))
    try:
        await harness.execute(
            sessions, "INSERT INTO categories (id, slug, name) VALUES (:id, 'home', 'Home')", id=category
        )
        for pid, sku, name, price, stock, threshold in (
            (lamp, "LAMP-1", "Desk Lamp", 1999, 7, 3),
            (chair, "CHAIR-1", "Oak Chair", 12900, 0, 0),
        ):
            await harness.execute(
                sessions,
                "INSERT INTO products (id, sku, name, price_minor, currency, category_id, stock, "
                "low_stock_threshold) VALUES (:id, :sku, :name, :price, 'USD', :category, :stock, :threshold)",
                id=pid,
                sku=sku,
                name=name,
                price=price,
                category=category,
                stock=stock,
                threshold=threshold,
            )
        await harness.execute(
            sessions,
            "INSERT INTO stock_orders (order_id, status, expires_at) VALUES (:id, 'RESERVED', now())",
            id=order,
        )
        await harness.execute(
            sessions,
            "INSERT INTO reservations (id, order_id, product_id, quantity, status, expires_at) "
            "VALUES (:id, :order, :pid, 2, 'RESERVED', now())",
            id=uuid.uuid4(),
            order=order,
            pid=lamp,
        )

        await upgrade_async("catalog", url)

        variants = await harness.execute(
            sessions,
            "SELECT product_id, sku, name, price_minor, stock, low_stock_threshold, options "
            "FROM product_variants ORDER BY sku",
        )
        assert [tuple(v) for v in variants] == [
            (chair, "CHAIR-1", "Default", None, 0, None, []),
            (lamp, "LAMP-1", "Default", None, 7, None, []),
        ]
        products = await harness.execute(
            sessions, "SELECT id, sku, price_minor, low_stock_threshold FROM products ORDER BY sku"
        )
        assert [tuple(p) for p in products] == [(chair, "CHAIR-1", 12900, 0), (lamp, "LAMP-1", 1999, 3)]
        [(reserved_variant, reserved_product, quantity, status)] = await harness.execute(
            sessions, "SELECT variant_id, product_id, quantity, status FROM reservations"
        )
        [(lamp_variant,)] = await harness.execute(
            sessions, "SELECT id FROM product_variants WHERE product_id = :id", id=lamp
        )
        assert (reserved_variant, reserved_product, quantity, status) == (lamp_variant, lamp, 2, "RESERVED")
        # The SKU became searchable with the product.
        [(found,)] = await harness.execute(
            sessions,
            "SELECT id FROM products WHERE search_vector @@ websearch_to_tsquery('english', 'LAMP-1')",
        )
        assert found == lamp
    finally:
        await engine.dispose()
