"""product variants and images

Every product becomes a product with one default variant that takes over its SKU, stock and (by
leaving its own price and threshold unset) its price and low-stock threshold. Reservations
follow their product's stock to that variant, so reservations in flight commit, release and
expire as before. The search vector gains the variants' SKUs and option values.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SEARCH_VECTOR = (
    "setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')"
)
SEARCH_VECTOR = (
    OLD_SEARCH_VECTOR + " || setweight(to_tsvector('english'::regconfig, coalesce(variant_terms, '')), 'C')"
)


def _search_vector(expression: str) -> None:
    """A generated column's expression cannot be altered everywhere: drop it and add it again."""
    op.drop_index("ix_products_search_vector", table_name="products", postgresql_using="gin")
    op.drop_column("products", "search_vector")
    op.add_column(
        "products",
        sa.Column("search_vector", postgresql.TSVECTOR(), sa.Computed(expression, persisted=True), nullable=False),
    )
    op.create_index(
        "ix_products_search_vector", "products", ["search_vector"], unique=False, postgresql_using="gin"
    )


def upgrade() -> None:
    op.add_column(
        "products",
        sa.Column(
            "option_groups",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column("products", sa.Column("variant_terms", sa.Text(), server_default="", nullable=False))
    op.create_table(
        "product_variants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "options", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("options_key", sa.Text(), server_default="", nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=True),
        sa.Column("stock", sa.Integer(), server_default="0", nullable=False),
        sa.Column("low_stock_threshold", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), server_default="0", nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "low_stock_threshold >= 0", name=op.f("ck_product_variants_low_stock_threshold_not_negative")
        ),
        sa.CheckConstraint("price_minor > 0", name=op.f("ck_product_variants_price_positive")),
        sa.CheckConstraint("stock >= 0", name=op.f("ck_product_variants_stock_not_negative")),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_variants_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_variants")),
        sa.UniqueConstraint("sku", name=op.f("uq_product_variants_sku")),
    )
    op.create_index(
        "ix_product_variants_product_id_position", "product_variants", ["product_id", "position"], unique=False
    )
    op.create_index(
        "uq_product_variants_product_id_options_key",
        "product_variants",
        ["product_id", "options_key"],
        unique=True,
        postgresql_where=sa.text("archived_at IS NULL"),
    )
    op.create_table(
        "product_images",
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("alt", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint("position >= 0", name=op.f("ck_product_images_position_not_negative")),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_product_images_product_id_products"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("product_id", "position", name=op.f("pk_product_images")),
    )

    # One default variant per product: its SKU and stock; price and threshold stay the product's.
    op.execute(
        "INSERT INTO product_variants (id, product_id, sku, name, stock, created_at, updated_at) "
        "SELECT gen_random_uuid(), id, sku, 'Default', stock, created_at, updated_at FROM products"
    )
    op.execute("UPDATE products SET variant_terms = sku")

    # Reservations (in flight or ended) move with their product's stock to its default variant.
    op.add_column("reservations", sa.Column("variant_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE reservations r SET variant_id = v.id FROM product_variants v WHERE v.product_id = r.product_id"
    )
    op.alter_column("reservations", "variant_id", nullable=False)
    op.create_foreign_key(
        op.f("fk_reservations_variant_id_product_variants"),
        "reservations",
        "product_variants",
        ["variant_id"],
        ["id"],
    )
    op.drop_constraint("uq_reservations_order_id_product_id", "reservations", type_="unique")
    op.create_unique_constraint("uq_reservations_order_id_variant_id", "reservations", ["order_id", "variant_id"])
    op.drop_index(
        "ix_reservations_product_id", table_name="reservations", postgresql_where=sa.text("status = 'RESERVED'")
    )
    op.create_index(
        "ix_reservations_variant_id",
        "reservations",
        ["variant_id"],
        unique=False,
        postgresql_where=sa.text("status = 'RESERVED'"),
    )

    op.drop_constraint(op.f("ck_products_stock_not_negative"), "products", type_="check")
    op.drop_column("products", "stock")
    _search_vector(SEARCH_VECTOR)


def downgrade() -> None:
    """Back to one stock per product: the sum of its variants' (the variants themselves are lost)."""
    op.add_column("products", sa.Column("stock", sa.Integer(), server_default="0", nullable=False))
    op.execute(
        "UPDATE products p SET stock = s.total FROM "
        "(SELECT product_id, sum(stock) AS total FROM product_variants GROUP BY product_id) s "
        "WHERE s.product_id = p.id"
    )
    op.create_check_constraint(op.f("ck_products_stock_not_negative"), "products", "stock >= 0")
    op.drop_index(
        "ix_reservations_variant_id", table_name="reservations", postgresql_where=sa.text("status = 'RESERVED'")
    )
    op.drop_constraint("uq_reservations_order_id_variant_id", "reservations", type_="unique")
    op.drop_constraint(op.f("fk_reservations_variant_id_product_variants"), "reservations", type_="foreignkey")
    op.drop_column("reservations", "variant_id")
    op.create_unique_constraint("uq_reservations_order_id_product_id", "reservations", ["order_id", "product_id"])
    op.create_index(
        "ix_reservations_product_id",
        "reservations",
        ["product_id"],
        unique=False,
        postgresql_where=sa.text("status = 'RESERVED'"),
    )
    op.drop_table("product_images")
    op.drop_index("ix_product_variants_product_id_position", table_name="product_variants")
    op.drop_table("product_variants")
    _search_vector(OLD_SEARCH_VECTOR)
    op.drop_column("products", "variant_terms")
    op.drop_column("products", "option_groups")
