"""Telling an outage from a bug: errors that mean "a server we depend on is not there right now".

PostgreSQL restarting, Redis stopped, a connection reset, a peer service answering UNAVAILABLE or
not in time: the same request will work once the dependency is back. Callers answer these with
UNAVAILABLE (a client may retry) instead of INTERNAL, and the event consumer retries them for as
long as they last instead of counting them against a message's attempts, which would dead-letter
good messages during an outage.
"""

from __future__ import annotations

import errno

import asyncpg
import grpc
import redis.exceptions
import sqlalchemy.exc

_TRANSIENT = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down
    asyncpg.AdminShutdownError,  # 57P01
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.ConnectionDoesNotExistError,  # the connection closed in the middle of a call
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection in time
)
# A peer's gRPC answer that means "not there right now", not "your request is wrong".
_PEER_OUTAGES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ETIMEDOUT,
    errno.EPIPE,
}


def is_transient(exc: BaseException) -> bool:
    """True when `exc`, or an error it was raised from, says a dependency is unreachable."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _TRANSIENT):
            return True
        if isinstance(current, OSError) and (
            current.errno in _NETWORK_ERRNOS or "Connect call failed" in str(current)
        ):
            return True  # asyncio reports failed connects to every address as a plain OSError
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, grpc.aio.AioRpcError) and current.code() in _PEER_OUTAGES:
            return True
        current = current.__cause__ or current.__context__
    return False
