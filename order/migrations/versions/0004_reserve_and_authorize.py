"""the saga reserves the stock and authorises the payment in one step, RESERVE_AND_AUTHORIZE

Sagas in flight in the two old steps carry on in the new one: an order still reserving waits
for both answers and is due at once, so that the timer sends the AuthorizePayment it never sent
(and the ReserveStock again: idempotent); an order authorising waits for the payment only.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 05:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STEPS = "'RESERVE_STOCK', 'AUTHORIZE_PAYMENT', 'COMMIT_STOCK', 'COMPENSATE'"
NEW_STEPS = "'RESERVE_AND_AUTHORIZE', 'COMMIT_STOCK', 'COMPENSATE'"
BOTH_STEPS = f"{OLD_STEPS}, 'RESERVE_AND_AUTHORIZE'"


def _steps(allowed: str) -> None:
    op.drop_constraint(op.f("ck_orders_saga_step_known"), "orders", type_="check")
    op.create_check_constraint(
        op.f("ck_orders_saga_step_known"), "orders", f"saga_step IS NULL OR saga_step IN ({allowed})"
    )


def upgrade() -> None:
    _steps(BOTH_STEPS)
    op.execute(
        "UPDATE orders SET saga_step = 'RESERVE_AND_AUTHORIZE', "
        "saga_pending = ARRAY['AUTHORIZE_PAYMENT', 'RESERVE_STOCK'], saga_deadline_at = now() "
        "WHERE saga_step = 'RESERVE_STOCK'"
    )
    op.execute(
        "UPDATE orders SET saga_step = 'RESERVE_AND_AUTHORIZE', saga_pending = ARRAY['AUTHORIZE_PAYMENT'] "
        "WHERE saga_step = 'AUTHORIZE_PAYMENT'"
    )
    _steps(NEW_STEPS)


def downgrade() -> None:
    _steps(BOTH_STEPS)
    # Both answers outstanding, or the stock's: reserve again (idempotent), then authorise.
    op.execute(
        "UPDATE orders SET saga_step = 'RESERVE_STOCK', saga_pending = '{}', saga_deadline_at = now() "
        "WHERE saga_step = 'RESERVE_AND_AUTHORIZE' AND 'RESERVE_STOCK' = ANY(saga_pending)"
    )
    op.execute(
        "UPDATE orders SET saga_step = 'AUTHORIZE_PAYMENT', saga_pending = '{}' "
        "WHERE saga_step = 'RESERVE_AND_AUTHORIZE'"
    )
    _steps(OLD_STEPS)
