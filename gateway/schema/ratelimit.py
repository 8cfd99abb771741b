"""`rateLimit`: the caller's budget of cost points, as the gateway meters it (README "Gateway limits")."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.context import Info
from gateway.ratelimit import current_operation_budget


@strawberry.type(
    description="The caller's budget of cost points: a bucket of `limit` points per account (or per client "
    "address when signed out) that refills continuously; every operation is charged its cost."
)
class RateLimit:
    limit: int = strawberry.field(description="Points in a full bucket.")
    cost: int = strawberry.field(description="What this operation costs (its requested cost).")
    remaining: int | None = strawberry.field(
        description="Points left after this operation was charged; null while the budget store is unavailable."
    )
    reset_at: datetime | None = strawberry.field(
        description="When the bucket will be full again; null while the budget store is unavailable."
    )


@strawberry.type
class RateLimitQuery:
    @strawberry.field(description="The caller's cost budget, as charged for this operation.")
    def rate_limit(self, info: Info) -> RateLimit:
        settings = info.context.settings
        charged = current_operation_budget.get()
        budget = charged.budget if charged is not None else None
        available = budget.available if budget is not None else None
        return RateLimit(
            limit=settings.rate_limit_capacity,
            cost=charged.cost if charged is not None else 0,
            remaining=None if available is None else int(available),
            reset_at=budget.reset_at() if budget is not None else None,
        )
