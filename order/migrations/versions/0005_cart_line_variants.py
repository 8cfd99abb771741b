"""a cart line is one product variant

A cart may hold two variants of one product (a small and a large shirt): the uniqueness moves
from (cart, product) to (cart, product, variant). A line without a variant (a catalog that lists
none) counts as the empty variant, so such a product still has one line.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("uq_cart_lines_cart_id_product_id", "cart_lines", type_="unique")
    op.create_index(
        "uq_cart_lines_cart_id_product_id_variant_id",
        "cart_lines",
        ["cart_id", "product_id", sa.text("coalesce(variant_id, '')")],
        unique=True,
    )


def downgrade() -> None:
    # Lines of one product's several variants become one line each product, the first kept.
    op.execute(
        "DELETE FROM cart_lines a USING cart_lines b WHERE a.cart_id = b.cart_id "
        "AND a.product_id = b.product_id AND a.added_at > b.added_at"
    )
    op.drop_index("uq_cart_lines_cart_id_product_id_variant_id", "cart_lines")
    op.create_unique_constraint("uq_cart_lines_cart_id_product_id", "cart_lines", ["cart_id", "product_id"])
