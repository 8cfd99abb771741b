"""The gateway's protection, wired in one place: the schema extensions that persist queries, limit
documents and meter callers, first in the schema's list.

Persisted queries come first: they resolve the document before anything parses it. Error codes
are given in `get_results`, which sees every result's final errors, after MaskErrors. The state
they share across requests (`gateway.protection.Protection`) reaches them through the context;
a schema executed without the gateway's context runs them without it.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import BatchingConfig
from strawberry.types.graphql import OperationType

from gateway.calls import RpcCallReport
from gateway.context import Context, request_context
from gateway.cost import calculator_for
from gateway.errors import ApiError, unauthenticated
from gateway.limits import ErrorCodes
from gateway.protection import Protection
from gateway.querystore import PersistedQueries, sha256
from gateway.ratelimit import Budget, OperationBudget, bucket_of, current_operation_budget
from gateway.settings import GatewaySettings
from servicekit.auth import REVOKED

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
QUERY_NOT_ALLOWLISTED = "QUERY_NOT_ALLOWLISTED"
QUERY_TOO_LARGE = "QUERY_TOO_LARGE"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
RATE_LIMITED = "RATE_LIMITED"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def protection_extensions(settings: GatewaySettings) -> list[Callable[[], SchemaExtension]]:
    """Extension factories for `strawberry.Schema(extensions=...)`, first in the list. The document
    limits are validation rules, added by `gateway.documents.Documents`."""
    factories: list[Callable[[], SchemaExtension]] = [
        lambda: PersistedQueryExtension(settings),
        lambda: ErrorCodes(hide_suggestions=settings.production),
        lambda: CostLimiter(settings),
    ]
    if settings.report_rpc_calls:
        factories.append(RpcCallReport)
    return factories


def batching_config(settings: GatewaySettings) -> BatchingConfig | None:
    return BatchingConfig(max_operations=settings.max_batch_operations) if settings.batching else None


def _protection(extension: SchemaExtension) -> tuple[Context, Protection] | None:
    """The operation's context and the shared state, when the gateway runs the operation."""
    context = request_context(extension.execution_context.context)
    if context is None or context.protection is None:
        return None
    return context, context.protection


class PersistedQueryExtension(SchemaExtension):
    """Resolves `extensions.persistedQuery`, enforces the allowlist and the document size limit,
    before the document is parsed; keeps an automatically persisted document once it validated."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._to_remember: tuple[str, str] | None = None

    def _store(self) -> PersistedQueries | None:
        shared = _protection(self)
        return shared[1].persisted if shared is not None else None

    async def on_operation(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        store = self._store()
        persisted = (ctx.operation_extensions or {}).get("persistedQuery")
        if persisted is not None and store is not None:
            digest = _digest(persisted)
            if ctx.query is None:
                query = await store.lookup(digest)
                if query is None:
                    raise ApiError("PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND)
                ctx.query = query
            elif sha256(ctx.query) != digest:
                raise ApiError(
                    "provided sha does not match query", "BAD_USER_INPUT", field="extensions.persistedQuery"
                )
            elif not store.allowlist_only:
                self._to_remember = (digest, ctx.query)
        if ctx.query is not None and len(ctx.query.encode()) > self.settings.max_query_bytes:
            raise ApiError(
                f"the query is larger than {self.settings.max_query_bytes} bytes",
                QUERY_TOO_LARGE,
                maximumBytes=self.settings.max_query_bytes,
            )
        if (
            store is not None
            and store.allowlist_only
            and ctx.query is not None
            and await store.allowed(sha256(ctx.query)) is None
        ):
            raise ApiError("only registered documents may be executed here", QUERY_NOT_ALLOWLISTED)
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        # Execution is reached only by a document that parsed and validated; the cost limiter
        # (inside this hook) may still refuse it, and a refused operation's document is not kept.
        yield
        store = self._store()
        if (
            self._to_remember is not None
            and store is not None
            and not _refused_by_cost(self.execution_context)
        ):
            await store.remember(*self._to_remember)


def _refused_by_cost(ctx: Any) -> bool:
    result = ctx.result
    if not isinstance(result, GraphQLExecutionResult):
        return False  # a subscription's stream: admitted (a refused one raised)
    return any(
        isinstance(error.extensions, dict)
        and error.extensions.get("code") in (RATE_LIMITED, QUERY_TOO_COMPLEX)
        for error in result.errors or ()
    )


def _digest(persisted: Any) -> str:
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise ApiError("only version 1 of persisted queries is supported", PERSISTED_QUERY_NOT_SUPPORTED)
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise ApiError(
            "sha256Hash must be 64 lower-case hexadecimal digits",
            "BAD_USER_INPUT",
            field="extensions.persistedQuery.sha256Hash",
        )
    return digest


def caller_key(context: Context) -> str:
    """The bucket of a verified account, or of the client address of anyone else."""
    return bucket_of(
        context.caller.account_id if context.caller is not None else None, context.client_address
    )


async def take(context: Context, protection: Protection, cost: int) -> Budget:
    """Charge `cost` to the caller's bucket (0 peeks). A token that verified but is not yet checked
    against the denylist is checked in the same round trip, once per request: revoked, its
    request is anonymous (`token_error` says why) and charged to the client address, as before."""
    pending, context.unconfirmed = context.unconfirmed, None
    if pending is not None:
        budget = await protection.bucket.take_unless_revoked(
            bucket_of(pending.caller.account_id, context.client_address),
            pending.check,
            protection.denylist,
            cost,
        )
        if budget is not None:
            context.caller = pending.caller
            return budget
        context.token_error = unauthenticated(REVOKED)
    return await protection.bucket.take(caller_key(context), cost)


class CostLimiter(SchemaExtension):
    """Refuses an operation above the cost limit (QUERY_TOO_COMPLEX) or above what the caller's
    bucket holds (RATE_LIMITED), before it executes; refunds what it did not use; reports both in
    `extensions.cost`."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.max_cost = min(settings.max_query_cost, settings.rate_limit_capacity)
        self.requested = 0
        self.actual = 0
        self.budget: Budget | None = None

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        assert ctx.graphql_document is not None
        calculator = calculator_for(ctx.schema._schema)
        self.requested = calculator.requested(ctx.graphql_document, ctx.operation_name, ctx.variables)
        shared = _protection(self)
        refusal: ApiError | None = None
        if self.requested > self.max_cost:
            refusal = ApiError(
                f"this operation costs {self.requested} points; the most one operation may cost is "
                f"{self.max_cost}",
                QUERY_TOO_COMPLEX,
                cost=self.requested,
                maximumCost=self.max_cost,
            )
        elif shared is not None:
            context, protection = shared
            self.budget = await take(context, protection, self.requested)
            if not self.budget.admitted:
                refusal = ApiError(
                    f"this operation costs {self.requested} points and {math.floor(self.budget.available or 0)} "
                    "are left; retry later",
                    RATE_LIMITED,
                    cost=self.requested,
                    retryAfter=self.budget.retry_after(self.requested),
                )
        if refusal is not None:
            if ctx.operation_type == OperationType.SUBSCRIPTION:
                raise refusal  # a subscription ignores a preset result
            ctx.result = GraphQLExecutionResult(data=None, errors=[refusal])
            yield
            return

        token = current_operation_budget.set(OperationBudget(self.requested, self.budget))
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # finalised outside the request's context
                current_operation_budget.reset(token)
        result = ctx.result
        if not isinstance(result, GraphQLExecutionResult):  # a subscription's stream: paid up front
            self.actual = self.requested
            return
        if result.data is None and all(e.path is None for e in result.errors or ()):
            self.actual = 0  # refused by execution itself (variables that do not fit): nothing ran
        else:
            actual = calculator.actual(ctx.graphql_document, result.data, ctx.operation_name, ctx.variables)
            self.actual = min(self.requested, actual)
        if shared is not None:
            shared[0].operation_cost = (self.requested, self.actual)  # what a cached answer is charged
        if shared is not None and self.actual < self.requested:
            context, protection = shared
            self.budget = await protection.bucket.refund(caller_key(context), self.requested - self.actual)

    async def get_results(self) -> dict[str, Any]:
        shared = _protection(self)
        if self.budget is None and shared is not None:  # refused before execution: no charge
            context, protection = shared
            self.budget = await take(context, protection, 0)
        return {
            "cost": {
                "requestedQueryCost": self.requested,
                "actualQueryCost": self.actual,
                "throttleStatus": None if self.budget is None else self.budget.throttle_status(),
            }
        }
