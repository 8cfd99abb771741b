"""Small helpers the test suites share: waiting on conditions, forging tokens, unique data."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import jwt
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from servicekit import kafka
from servicekit.security import SigningKey
from servicekit.settings import PlatformSettings

T = TypeVar("T")


def group_timeouts() -> dict[str, int]:
    """Session and heartbeat of a test's own group consumer, as the services under test have them
    (KAFKA_SESSION_TIMEOUT_MS): the embedded broker holds a join for half the session timeout."""
    return kafka.group_timeouts(PlatformSettings().kafka_session_timeout_ms)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def claims(
    subject: str,
    *,
    role: str = "ADMIN",
    issuer: str = "ecommerce-account",
    audience: str = "ecommerce",
    lifetime: int = 900,
    **overrides: object,
) -> dict:
    now = int(time.time())
    values: dict = {
        "sub": subject,
        "role": role,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    values.update(overrides)
    return values


def alg_none_token(payload: dict, kid: str) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    body = _b64(json.dumps(payload).encode())
    return f"{header}.{body}."


def hs256_with_public_key(payload: dict, public_pem: bytes, kid: str) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the server's public key."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = _b64(json.dumps(payload).encode())
    signature = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def signed(payload: dict, key: SigningKey, *, typ: str = "at+jwt") -> str:
    return jwt.encode(payload, key.to_pem(), algorithm="RS256", headers={"kid": key.kid, "typ": typ})


def saga_histories(*tail: str) -> list[list[str]]:
    """The statuses a placed order may pass through before `tail`: AWAITING_PAYMENT when its stock
    was reserved before its payment answered, none between when the payment answered first."""
    return [["PENDING", "AWAITING_PAYMENT", *tail], ["PENDING", *tail]]


class Sent(NamedTuple):
    """A statement sent to the database, and its parameters (a list of them for executemany)."""

    sql: str
    parameters: Any


# What a transaction's own control statements start with: `sql_sent` leaves them out.
_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@contextlib.contextmanager
def sql_sent(engine: AsyncEngine) -> Iterator[list[Sent]]:
    """Every statement the engine's connections send meanwhile, through SQLAlchemy or straight
    through asyncpg (`servicekit.db.driver`), without the transactions' BEGIN and COMMIT."""
    seen: list[Sent] = []
    logging: list[Any] = []

    def through_sqlalchemy(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        seen.append(Sent(statement, parameters))

    def through_asyncpg(record: Any) -> None:
        if not record.query.lstrip().upper().startswith(_TRANSACTION_CONTROL):
            seen.append(Sent(record.query, record.args))

    def checked_out(dbapi_connection, record, proxy) -> None:  # type: ignore[no-untyped-def]
        driver = record.driver_connection
        driver.add_query_logger(through_asyncpg)
        logging.append(driver)

    sync = engine.sync_engine
    event.listen(sync, "before_cursor_execute", through_sqlalchemy)
    event.listen(sync, "checkout", checked_out)
    try:
        yield seen
    finally:
        event.remove(sync, "before_cursor_execute", through_sqlalchemy)
        event.remove(sync, "checkout", checked_out)
        for driver in logging:
            driver.remove_query_logger(through_asyncpg)
