"""order items name the product variant

An order line is one product variant. Lines placed before keep a NULL variant: they were one
line per product, which the new uniqueness still holds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("order_items", sa.Column("variant_id", sa.Uuid(), nullable=True))
    op.drop_constraint("uq_order_items_order_id_product_id", "order_items", type_="unique")
    op.create_unique_constraint(
        "uq_order_items_order_id_product_id_variant_id", "order_items", ["order_id", "product_id", "variant_id"]
    )


def downgrade() -> None:
    op.drop_constraint("uq_order_items_order_id_product_id_variant_id", "order_items", type_="unique")
    op.create_unique_constraint("uq_order_items_order_id_product_id", "order_items", ["order_id", "product_id"])
    op.drop_column("order_items", "variant_id")
