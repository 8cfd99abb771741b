"""`ecommerce register-queries FILE...`: documents added to the gateway's allowlist in Redis.

The store, its checks and the file formats are `gateway.querystore`'s; registration checks each
document against the schema the gateway serves, so it sits above the schema.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.querystore import PersistedQueries, Registered, RegistrationError, check_file, sha256
from gateway.schema import create_schema
from gateway.settings import GatewaySettings

__all__ = ["PersistedQueries", "Registered", "RegistrationError", "main", "register_files", "sha256"]


async def register_files(paths: Iterable[Path], settings: GatewaySettings) -> list[Registered]:
    """Check every document of every file, then add them all to the allowlist; none if one is invalid."""
    schema = create_schema(settings)._schema
    pending = [checked for path in paths for checked in check_file(path, schema, settings)]
    redis = aioredis.from_url(settings.redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
    try:
        store = PersistedQueries(redis, ttl=settings.persisted_queries_ttl, allowlist_only=True)
        for query, registered in pending:
            await store.register(query, registered)
    finally:
        await redis.aclose()
    return [registered for _, registered in pending]


def main(argv: list[str] | None = None) -> int:
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
