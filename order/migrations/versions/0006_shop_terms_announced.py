"""every change of the shop's terms is announced

Each order process remembers the shipping methods and tax rates (order/terms.py) and reads them
again when it hears of a change on the `order_shop_terms` channel. A statement trigger on both
tables sends that NOTIFY in the changing transaction, whatever changed them: the admin API, the
demo seed, an operator's SQL, a TRUNCATE.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 23:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("shipping_methods", "tax_rates")


def upgrade() -> None:
    op.execute(
        "CREATE OR REPLACE FUNCTION announce_shop_terms() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN PERFORM pg_notify('order_shop_terms', ''); RETURN NULL; END $$"
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_announced AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION announce_shop_terms()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_announced ON {table}")
    op.execute("DROP FUNCTION IF EXISTS announce_shop_terms()")
