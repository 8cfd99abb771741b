"""Persisted queries: documents by their SHA-256, kept in Redis, and the checks a document passes
to be registered.

Automatic (APQ): a client sends `extensions.persistedQuery {version: 1, sha256Hash}` without the
query; if the gateway knows the hash it runs that document, otherwise it answers
`PersistedQueryNotFound` (code PERSISTED_QUERY_NOT_FOUND) and the client sends the query with the
hash, which the gateway checks and, once the document has validated and the cost limiter admitted
the operation, keeps in the cache Redis (`CACHE_REDIS_URL`, which may evict it) if it is no larger
than `GATEWAY_PERSISTED_QUERIES_MAX_BYTES`.

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

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode, parse, specified_rules, validate
from redis.exceptions import RedisError

from gateway.cost import calculator_for
from gateway.limits import document_rules

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


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
    errors = validate(schema, document, [*specified_rules, *document_rules(settings)])
    if errors:
        raise RegistrationError("; ".join(e.message for e in errors))
    names = tuple(
        d.name.value if d.name else "" for d in document.definitions if isinstance(d, OperationDefinitionNode)
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


def check_file(path: Path, schema: GraphQLSchema, settings: GatewaySettings) -> list[tuple[str, Registered]]:
    """Every document of a file with its check; the first invalid one refuses the whole file."""
    checked = []
    for index, query in enumerate(read_documents(path)):
        try:
            checked.append((query, check_document(query, schema, settings)))
        except RegistrationError as exc:
            raise RegistrationError(f"{path}, document {index + 1}: {exc}") from None
    return checked


class PersistedQueries:
    """Documents by their SHA-256: the APQ cache (expiring, in `cache`, which may evict it) and the
    allowlist (in `redis`, with the security state, never evicted)."""

    AUTOMATIC = "gateway:persisted:auto:"
    ALLOWLIST = "gateway:persisted:allowlist"

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        ttl: int,
        allowlist_only: bool,
        cache: aioredis.Redis | None = None,
        max_bytes: int = 16 * 1024,
    ) -> None:
        self.redis = redis
        self.cache = cache if cache is not None else redis
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.allowlist_only = allowlist_only
        self._allowed: dict[str, str] = {}  # loaded from the file, and every allowlist hit

    async def lookup(self, digest: str) -> str | None:
        """The document with this hash that may run, or None."""
        allowed = await self.allowed(digest)
        if allowed is not None or self.allowlist_only:
            return allowed
        try:
            value = await self.cache.get(self.AUTOMATIC + digest)
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

    async def remember(self, digest: str, query: str) -> bool:
        """Keep an automatically persisted document (after it validated and was admitted) if it is no
        larger than `max_bytes`; whether it was kept."""
        if len(query.encode()) > self.max_bytes:
            return False
        try:
            await self.cache.set(self.AUTOMATIC + digest, query, ex=self.ttl)
            return True
        except RedisError as exc:
            log.warning("cannot persist query: %s", exc)
            return False

    def allow_locally(self, query: str) -> None:
        self._allowed[sha256(query)] = query

    async def register(self, query: str, registered: Registered) -> None:
        """Add a document to the allowlist in Redis (for every gateway instance)."""
        record = {"query": query, "cost": registered.cost, "operations": list(registered.operations)}
        await self.redis.hset(self.ALLOWLIST, registered.sha256, orjson.dumps(record))

    def load_file(self, path: Path, schema: GraphQLSchema, settings: GatewaySettings) -> list[Registered]:
        """Allow every document of a file in this process; refuses the whole file if one is invalid."""
        checked = check_file(path, schema, settings)
        for query, _ in checked:
            self.allow_locally(query)
        return [registered for _, registered in checked]
