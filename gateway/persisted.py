"""Persisted queries: Apollo's automatic persisted query protocol, and an allowlist mode.

Automatic (APQ): a client sends `extensions.persistedQuery {version: 1, sha256Hash}` without the
query; if the gateway knows the hash it runs that document, otherwise it answers
`PersistedQueryNotFound` (code PERSISTED_QUERY_NOT_FOUND) and the client sends the query with the
hash, which the gateway checks and, once the document has validated, keeps in Redis.

Allowlist (`GATEWAY_PERSISTED_QUERIES_ONLY`, for production): only registered documents run,
sent in full or by hash. Documents are registered from a file when the gateway starts
(`GATEWAY_PERSISTED_QUERIES_FILE`) or with `ecommerce register-queries FILE...` (into Redis, so
every gateway instance sees them without a restart). Registration validates each document
against the schema and its limits and stores its cost, computed with its variables' defaults.

Files: a `.graphql` file is one document (it may hold several operations and their fragments);
a `.json` file is a list of documents, an object of `{id: document}`, or an Apollo persisted
query manifest (`{"operations": [{"body": ...}]}`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLError, GraphQLSchema, parse, specified_rules, validate
from redis.exceptions import RedisError
from strawberry.extensions import SchemaExtension

from gateway.cost import calculator_for
from gateway.errors import ApiError
from gateway.limits import alias_rule, depth_rule, directives_rule

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from gateway.protection import Protection
    from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
QUERY_NOT_ALLOWLISTED = "QUERY_NOT_ALLOWLISTED"
QUERY_TOO_LARGE = "QUERY_TOO_LARGE"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


@dataclass(frozen=True)
class Registered:
    sha256: str
    cost: int
    operations: tuple[str, ...]


class RegistrationError(ValueError):
    pass


def check_document(query: str, schema: GraphQLSchema, settings: GatewaySettings) -> Registered:
    """Parse and validate a document with the gateway's limits; its cost with default variables."""
    if len(query.encode()) > settings.max_query_bytes:
        raise RegistrationError(f"the document is larger than {settings.max_query_bytes} bytes")
    try:
        document = parse(query, max_tokens=settings.max_tokens)
    except GraphQLError as exc:
        raise RegistrationError(exc.message) from None
    rules = [
        *specified_rules,
        depth_rule(settings.max_depth),
        alias_rule(settings.max_aliases),
        directives_rule(settings.max_directives_per_field),
    ]
    errors = validate(schema, document, rules)
    if errors:
        raise RegistrationError("; ".join(e.message for e in errors))
    names = tuple(
        d.name.value if d.name else ""
        for d in document.definitions
        if getattr(d, "operation", None) is not None
    )
    calculator = calculator_for(schema)
    cost = max(calculator.requested(document, name or None) for name in names)
    maximum = min(settings.max_query_cost, settings.rate_limit_capacity)
    if cost > maximum:
        raise RegistrationError(
            f"the document costs {cost} points; the most one operation may cost is {maximum}"
        )
    return Registered(sha256(query), cost, names)


def read_documents(path: Path) -> list[str]:
    """The documents of a `.graphql` file (one) or a `.json` file (many; see the module's doc)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix not in (".json",):
        return [text]
    data = json.loads(text)
    if isinstance(data, dict) and isinstance(data.get("operations"), list):
        return [str(op["body"]) for op in data["operations"]]
    if isinstance(data, dict):
        return [str(v) for v in data.values()]
    if isinstance(data, list):
        return [str(v) for v in data]
    raise RegistrationError(f"{path}: expected a list, an object or an Apollo manifest")


class PersistedQueries:
    """Documents by their SHA-256: the APQ cache (expiring) and the allowlist, both in Redis."""

    AUTOMATIC = "gateway:persisted:auto:"
    ALLOWLIST = "gateway:persisted:allowlist"

    def __init__(self, redis: aioredis.Redis, *, ttl: int, allowlist_only: bool) -> None:
        self.redis = redis
        self.ttl = ttl
        self.allowlist_only = allowlist_only
        self._allowed: dict[str, str] = {}  # loaded from the file, and every allowlist hit

    async def lookup(self, digest: str) -> str | None:
        """The document with this hash that may run, or None."""
        allowed = await self.allowed(digest)
        if allowed is not None or self.allowlist_only:
            return allowed
        try:
            value = await self.redis.get(self.AUTOMATIC + digest)
        except RedisError as exc:
            log.warning("persisted queries unavailable: %s", exc)
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def allowed(self, digest: str) -> str | None:
        if digest in self._allowed:
            return self._allowed[digest]
        try:
            value = await self.redis.hget(self.ALLOWLIST, digest)
        except RedisError as exc:
            log.warning("persisted query allowlist unavailable: %s", exc)
            return None
        if value is None:
            return None
        query = orjson.loads(value)["query"]
        self._allowed[digest] = query
        return query

    async def remember(self, digest: str, query: str) -> None:
        """Keep an automatically persisted document (after it validated)."""
        try:
            await self.redis.set(self.AUTOMATIC + digest, query, ex=self.ttl)
        except RedisError as exc:
            log.warning("cannot persist query: %s", exc)

    def allow_locally(self, query: str) -> None:
        self._allowed[sha256(query)] = query

    async def register(self, query: str, registered: Registered) -> None:
        """Add a document to the allowlist in Redis (for every gateway instance)."""
        record = {"query": query, "cost": registered.cost, "operations": list(registered.operations)}
        await self.redis.hset(self.ALLOWLIST, registered.sha256, orjson.dumps(record))

    def load_file(self, path: Path, schema: GraphQLSchema, settings: GatewaySettings) -> list[Registered]:
        """Allow every document of a file in this process; refuses the whole file if one is invalid."""
        documents = read_documents(path)
        checked = []
        for index, query in enumerate(documents):
            try:
                checked.append(check_document(query, schema, settings))
            except RegistrationError as exc:
                raise RegistrationError(f"{path}, document {index + 1}: {exc}") from None
        for query in documents:
            self.allow_locally(query)
        return checked


class PersistedQueryExtension(SchemaExtension):
    """Resolves `extensions.persistedQuery`, enforces the allowlist and the document size limit,
    before the document is parsed; keeps an automatically persisted document once it validated."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._to_remember: tuple[str, str] | None = None

    def _store(self) -> PersistedQueries | None:
        extras = getattr(self.execution_context.context, "extras", None)
        protection: Protection | None = extras.get("protection") if isinstance(extras, dict) else None
        return protection.persisted if protection is not None else None

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
        # Execution is reached only by a document that parsed and validated.
        store = self._store()
        if self._to_remember is not None and store is not None:
            await store.remember(*self._to_remember)
        yield


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


# -- `ecommerce register-queries FILE...` --------------------------------------------------------


async def register_files(paths: Iterable[Path], settings: GatewaySettings) -> list[Registered]:
    import redis.asyncio as aioredis

    from gateway.schema import create_schema

    schema = create_schema(settings)._schema
    pending = []
    for path in paths:
        for index, query in enumerate(read_documents(path)):
            try:
                pending.append((query, check_document(query, schema, settings)))
            except RegistrationError as exc:
                raise RegistrationError(f"{path}, document {index + 1}: {exc}") from None
    redis = aioredis.from_url(settings.redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
    try:
        store = PersistedQueries(redis, ttl=settings.persisted_queries_ttl, allowlist_only=True)
        for query, registered in pending:
            await store.register(query, registered)
    finally:
        await redis.aclose()
    return [registered for _, registered in pending]


def main(argv: list[str] | None = None) -> int:
    from gateway.settings import GatewaySettings

    parser = argparse.ArgumentParser(
        prog="ecommerce register-queries", description="Add GraphQL documents to the gateway's allowlist."
    )
    parser.add_argument("files", nargs="+", type=Path, help=".graphql (one document) or .json (many)")
    args = parser.parse_args(argv)
    try:
        registered = asyncio.run(register_files(args.files, GatewaySettings()))
    except (RegistrationError, OSError, ValueError, RedisError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for item in registered:
        names = ", ".join(n or "(anonymous)" for n in item.operations)
        print(f"{item.sha256}  cost {item.cost:>5}  {names}")
    print(f"Registered {len(registered)} document(s).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
