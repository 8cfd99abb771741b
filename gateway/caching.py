"""The response cache at work (docs/caching.md): `ResponseCaching` keeps the answers the schema
executes, and `CachedAnswers` answers a request from them before anything is parsed or executed.

A request answered from the cache still does what every request does that a client could notice:
its caller is verified, its budget charged (its requested and actual cost are the entry's) and
reported in `extensions.cost`, and it is counted, traced and logged as an operation. Anything the
cache cannot answer exactly as execution would (a batch, an unknown document, a token that does
not verify, an exhausted budget) goes the whole way, which answers it properly.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import KW_ONLY, dataclass
from typing import Any

import orjson
from graphql import ExecutionResult as GraphQLExecutionResult
from starlette.requests import Request
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

from gateway.context import request_context
from gateway.forwarded import client_address
from gateway.httpcache import etag_of
from gateway.metrics import operation_label, record_operation
from gateway.ratelimit import CostBucket, bucket_of
from gateway.responsecache import (
    Reads,
    ResponseCache,
    changes_catalog,
    key_of,
    plan,
    reads_of_this_execution,
    requested_key,
)
from gateway.settings import GatewaySettings
from servicekit.auth import Authenticator, TokenDenylist, VerifiedToken, bearer_token
from servicekit.context import new_request_id, request_id_var
from servicekit.tracing import server_span


class ResponseCaching(SchemaExtension):
    """Around each execution over HTTP: keeps a cacheable answer, tags it for HTTP caching, and
    makes this instance's answers stale after a catalog mutation. It sits outside the cost
    limiter, whose costs it records with the answer."""

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        context = request_context(ctx.context)
        cache = context.responses if context is not None else None
        if context is None or cache is None or not isinstance(context.request, Request):
            yield
            return
        document = ctx.graphql_document
        assert document is not None
        if changes_catalog(document, ctx.operation_name):
            try:
                yield
            finally:
                cache.changes.everything_changed()
            return
        planned = plan(document, ctx.operation_name)
        if planned is None:
            yield
            return
        cache.missed()
        tick = cache.changes.tick  # before anything is read: a change read later makes it stale
        reads = Reads()
        token = reads_of_this_execution.set(reads)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # finalised outside the request's context
                reads_of_this_execution.reset(token)
        result = ctx.result
        if (
            not isinstance(result, GraphQLExecutionResult)
            or result.errors
            or result.data is None
            or reads.for_the_caller
            or context.operation_cost is None
        ):
            return
        data = orjson.dumps(result.data)
        context.answer_etag = etag_of(data)
        # Keyed by the name as the request gave it (none for a lone operation), as it is looked up.
        sent_name = getattr(ctx, "_provided_operation_name", ctx.operation_name)
        key = key_of(ctx.query, sent_name, ctx.variables) if ctx.query is not None else None
        if key is not None and cache.max_bytes > 0:
            cache.put(
                key,
                data=data,
                etag=context.answer_etag,
                operation=operation_label(ctx.operation_name),
                cost=context.operation_cost,
                tick=tick,
                product_ids=reads.product_ids,
                listing=planned.listing,
            )


@dataclass
class CachedAnswers:
    """Answers requests from the response cache, or says (None) that they must be executed."""

    settings: GatewaySettings
    cache: ResponseCache
    _: KW_ONLY
    authenticator: Authenticator
    bucket: CostBucket
    denylist: TokenDenylist
    trusted_proxies: Any

    async def answer(self, request: Request) -> Response | None:
        payload = await _payload(request)
        key = requested_key(self.cache, payload) if payload is not None else None
        entry = self.cache.get(key) if key is not None else None
        if entry is None:
            return None
        request_id = request.headers.get("x-request-id") or ""
        request_id_var.set(request_id if 0 < len(request_id) <= 128 else new_request_id())
        started = time.perf_counter()
        with server_span("graphql", request.headers) as span:
            try:
                verified = await self._verified(request)
            except _Unverified:
                return None
            address = client_address(
                request.client.host if request.client else None,
                request.headers.getlist("x-forwarded-for"),
                self.trusted_proxies,
            )
            if verified is None:
                budget = await self.bucket.take_known(bucket_of(None, address), entry.requested, entry.actual)
            else:  # the token's revocation is checked in the budget's round trip
                revocable = await self.bucket.take_unless_revoked(
                    bucket_of(verified.caller.account_id, address),
                    verified.check,
                    self.denylist,
                    entry.requested,
                    entry.actual,
                )
                if revocable is None:
                    return None  # revoked, and charged nothing: execution says so
                budget = revocable
            if not budget.admitted:
                return None  # executed, it is refused with RATE_LIMITED and when to retry
            extensions: dict[str, Any] = {
                "cost": {
                    "requestedQueryCost": entry.requested,
                    "actualQueryCost": entry.actual,
                    "throttleStatus": budget.throttle_status(),
                }
            }
            if self.settings.report_rpc_calls:
                extensions["rpcCalls"] = {}
            body = b'{"data":' + entry.data + b',"extensions":' + orjson.dumps(extensions) + b"}"
            record_operation(span, entry.operation, "query", "OK", time.perf_counter() - started)
        return Response(body, media_type="application/json", headers={"ETag": entry.etag})

    async def _verified(self, request: Request) -> VerifiedToken | None:
        """The caller's token, verified but not yet checked against the denylist; None for an
        anonymous caller (or a malformed header, which execution also ignores for public reads)."""
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return None
        try:
            return await self.authenticator.verify(token)
        except Exception:  # a bad token or keys that cannot be had: execution says which
            raise _Unverified from None


class _Unverified(Exception):
    """The request's token does not verify (now): it is executed, which says why."""


async def _payload(request: Request) -> Any:
    """The operation a GET or a JSON POST sends; None for anything else (execution answers it)."""
    try:
        if request.method == "GET":
            params = request.query_params
            if "query" not in params and "extensions" not in params:
                return None
            return {
                "query": params.get("query"),
                "operationName": params.get("operationName"),
                "variables": orjson.loads(params["variables"]) if params.get("variables") else None,
                "extensions": orjson.loads(params["extensions"]) if params.get("extensions") else None,
            }
        content_type = request.headers.get("content-type", "")
        if request.method != "POST" or content_type.split(";", 1)[0].strip().lower() != "application/json":
            return None
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None
