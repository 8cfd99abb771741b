"""The gateway's protection, wired in one place: the schema extensions that limit documents,
meter callers and persist queries, and the per-process state they share.

Persisted queries come first: they resolve the document before anything parses it. Error codes
are given in `get_results`, which sees every result's final errors, after MaskErrors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from strawberry.extensions import AddValidationRules, SchemaExtension

from gateway.calls import RpcCallReport
from gateway.limits import ErrorCodes, alias_rule, depth_rule, directives_rule
from gateway.persisted import PersistedQueries, PersistedQueryExtension
from gateway.ratelimit import CostBucket, CostLimiter

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from graphql import GraphQLSchema

    from gateway.settings import GatewaySettings


class Protection:
    """Lives as long as the process (GatewayState); reaches the extensions through
    `Context.extras["protection"]`."""

    def __init__(self, settings: GatewaySettings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.bucket = CostBucket(
            redis, capacity=settings.rate_limit_capacity, restore_rate=settings.rate_limit_restore_rate
        )
        self.persisted = PersistedQueries(
            redis, ttl=settings.persisted_queries_ttl, allowlist_only=settings.persisted_queries_only
        )

    def start(self, schema: GraphQLSchema) -> None:
        """Load the allowlist file, if any; an invalid document stops the gateway from starting."""
        if self.settings.persisted_queries_file is not None:
            self.persisted.load_file(self.settings.persisted_queries_file, schema, self.settings)


def protection_extensions(settings: GatewaySettings) -> list[Callable[[], SchemaExtension]]:
    """Extension factories for `strawberry.Schema(extensions=...)`, first in the list.

    The validation rules are built once, so that ValidationCache can recognise them.
    """
    rules = [
        depth_rule(settings.max_depth),
        alias_rule(settings.max_aliases),
        directives_rule(settings.max_directives_per_field),
    ]
    factories: list[Callable[[], Any]] = [
        lambda: PersistedQueryExtension(settings),
        lambda: ErrorCodes(hide_suggestions=settings.production),
        lambda: AddValidationRules(rules),
        lambda: CostLimiter(settings),
    ]
    if settings.report_rpc_calls:
        factories.append(RpcCallReport)
    return factories


def batching_config(settings: GatewaySettings) -> dict[str, int] | None:
    return {"max_operations": settings.max_batch_operations} if settings.batching else None
