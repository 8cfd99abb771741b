"""Verifying callers: JWKS-backed access-token checks, the logout denylist, role and ownership guards."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from servicekit.context import ADMIN, Caller
from servicekit.errors import PermissionDenied, Unauthenticated
from servicekit.security import InvalidToken, TokenVerifier, UnknownKeyId

log = logging.getLogger(__name__)

JwksFetcher = Callable[[], Awaitable[dict]]

DENYLIST_PREFIX = "auth:denied-jti:"

# A service calling another as itself (the notification service looking up recipients), proven
# by the shared INTERNAL_SERVICE_TOKEN rather than by a user's access token.
SERVICE = "SERVICE"
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class JwksKeySet:
    """The verifier's public keys, refetched when a token names an unknown `kid`, at most once
    every `min_refresh_interval` seconds so that forged kids cannot turn us into a JWKS flooder."""

    def __init__(
        self, verifier: TokenVerifier, fetch: JwksFetcher, *, min_refresh_interval: float = 5.0
    ) -> None:
        self.verifier = verifier
        self._fetch = fetch
        self._min_refresh_interval = min_refresh_interval
        self._last_refresh = float("-inf")
        self._lock = asyncio.Lock()
        self._loaded = False

    async def refresh(self, *, force: bool = False) -> bool:
        async with self._lock:
            now = time.monotonic()
            if not force and now - self._last_refresh < self._min_refresh_interval:
                return False
            self._last_refresh = now
            jwks = await self._fetch()
            self.verifier.set_jwks(jwks)
            self._loaded = True
            return True

    async def verify(self, token: str):
        if not self._loaded:
            await self.refresh(force=True)
        try:
            return self.verifier.verify(token)
        except UnknownKeyId:
            if await self.refresh():
                return self.verifier.verify(token)
            raise


class TokenDenylist:
    """Access tokens revoked before they expire (logout), kept in Redis until their `exp`."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def add(self, token_id: str, expires_at: datetime) -> None:
        ttl = int((expires_at - datetime.now(UTC)).total_seconds()) + 1
        if ttl > 0:
            await self.redis.set(DENYLIST_PREFIX + token_id, b"1", ex=ttl)

    async def contains(self, token_id: str) -> bool:
        try:
            return bool(await self.redis.exists(DENYLIST_PREFIX + token_id))
        except (RedisError, OSError) as exc:
            # Tokens live 15 minutes; refusing every caller while Redis is away would turn a
            # cache outage into a full outage, so the denylist fails open and says so.
            log.warning("token denylist unavailable, accepting token: %s", exc)
            return False


class Authenticator:
    """Turns a bearer token into a `Caller`, or raises `Unauthenticated` with a safe message."""

    def __init__(
        self, keys: JwksKeySet, denylist: TokenDenylist | None = None, *, service_token: str = ""
    ) -> None:
        self.keys = keys
        self.denylist = denylist
        self._service_token = service_token.encode()

    async def authenticate(self, token: str) -> Caller:
        try:
            claims = await self.keys.verify(token)
        except InvalidToken as exc:
            raise Unauthenticated(f"invalid access token: {exc.reason}") from None
        role = claims.role if claims.role in ("CUSTOMER", "ADMIN") else ""
        if not role:
            raise Unauthenticated("invalid access token: unknown role")
        if self.denylist is not None and claims.jti and await self.denylist.contains(claims.jti):
            raise Unauthenticated("access token has been revoked")
        return Caller(
            account_id=claims.subject,
            role=role,
            token_id=claims.jti,
            expires_at=claims.expires_at,
            token=token,
        )

    def authenticate_service(self, presented: str, name: str | None) -> Caller:
        """A peer service's `x-service-token`, compared in constant time; refused when none is set."""
        if not self._service_token or not hmac.compare_digest(presented.encode(), self._service_token):
            raise Unauthenticated("invalid service credential")
        name = name if name and _SERVICE_NAME.match(name) else "unknown"
        return Caller(account_id=f"service:{name}", role=SERVICE)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value; None when absent or of another scheme."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_caller(caller: Caller | None) -> Caller:
    if caller is None:
        raise Unauthenticated("sign in first: this operation needs an access token")
    return caller


def require_admin(caller: Caller | None) -> Caller:
    caller = require_caller(caller)
    if caller.role != ADMIN:
        raise PermissionDenied("this operation is for administrators")
    return caller


def jwks_from_json(document: str) -> dict:
    return orjson.loads(document)
