"""The state the gateway's protection shares across requests: cost budgets, the token denylist
they check in the same round trip, and persisted queries.

The schema extensions that use it are `gateway.extensions`; they reach it through
`Context.protection`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.querystore import PersistedQueries
from gateway.ratelimit import CostBucket
from servicekit.auth import TokenDenylist

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from graphql import GraphQLSchema

    from gateway.settings import GatewaySettings


class Protection:
    """Lives as long as the process (GatewayState)."""

    def __init__(
        self, settings: GatewaySettings, redis: aioredis.Redis, cache: aioredis.Redis | None = None
    ) -> None:
        """`redis` holds the budgets and the allowlist (never evicted); `cache` the automatically
        persisted documents (may be evicted), `redis` when not given."""
        self.settings = settings
        self.denylist = TokenDenylist(redis)
        self.bucket = CostBucket(
            redis, capacity=settings.rate_limit_capacity, restore_rate=settings.rate_limit_restore_rate
        )
        self.persisted = PersistedQueries(
            redis,
            cache=cache,
            ttl=settings.persisted_queries_ttl,
            max_bytes=settings.persisted_queries_max_bytes,
            allowlist_only=settings.persisted_queries_only,
        )

    def start(self, schema: GraphQLSchema) -> None:
        """Load the allowlist file, if any; an invalid document stops the gateway from starting."""
        if self.settings.persisted_queries_file is not None:
            self.persisted.load_file(self.settings.persisted_queries_file, schema, self.settings)
