"""Verifying callers: JWKS-backed access-token checks, the revocation list (logout, password and
role changes), role and ownership guards."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
VALID_AFTER_PREFIX = "auth:valid-after:"

# A service calling another as itself (the notification service looking up recipients), proven
# by the shared INTERNAL_SERVICE_TOKEN rather than by a user's access token.
SERVICE = "SERVICE"
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class JwksKeySet:
    """The verifier's public keys, refetched when a token names an unknown `kid`, at most once
    every `min_refresh_interval` seconds so that forged kids cannot turn us into a JWKS flooder.

    A token with an unknown `kid` that arrives within the interval waits for its end, when that
    is at most `max_wait` seconds away, and is checked against the refetched keys: with an
    interval no longer than `max_wait`, a token signed by a key that was just rotated in is never
    refused. Tokens waiting together share one fetch.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        fetch: JwksFetcher,
        *,
        min_refresh_interval: float = 5.0,
        max_wait: float = 5.0,
    ) -> None:
        self.verifier = verifier
        self._fetch = fetch
        self._min_refresh_interval = min_refresh_interval
        self._max_wait = max_wait
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
        except UnknownKeyId as unknown:
            await self._refresh_for(unknown)
            return self.verifier.verify(token)

    async def _refresh_for(self, unknown: UnknownKeyId) -> None:
        async with self._lock:
            if unknown.kid in self.verifier.kids:
                return  # another request's refetch brought it
            wait = self._last_refresh + self._min_refresh_interval - time.monotonic()
            if wait > self._max_wait:
                raise unknown
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_refresh = time.monotonic()
            self.verifier.set_jwks(await self._fetch())
            self._loaded = True


@dataclass(frozen=True)
class RevocationCheck:
    """What the denylist needs to know of a verified token: its `jti`, account and issue time."""

    token_id: str
    account_id: str
    issued_at: datetime

    @property
    def keys(self) -> tuple[str, str]:
        """The token's denylist entry and its account's cut-off, in that order."""
        return DENYLIST_PREFIX + self.token_id, VALID_AFTER_PREFIX + self.account_id

    @property
    def issued_at_millis(self) -> int:
        return _millis(self.issued_at)


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature and claims verified, its revocation not checked yet."""

    caller: Caller
    check: RevocationCheck


class TokenDenylist:
    """Access tokens revoked before they expire, kept in Redis no longer than a token lives:

    - one token by its `jti` (logout), until its `exp`;
    - every token of an account issued before a cut-off (password or role change), as the
      cut-off in milliseconds under the account id, for `ttl` seconds (the longest token life).

    `revoked` checks both in one round trip. When Redis cannot be reached it answers "not revoked"
    and logs a warning: tokens live minutes, and refusing every caller while Redis is away would
    turn a cache outage into a full outage (the account service rewrites the cut-offs it keeps in
    its database when it starts, see `AccountService.restore_cutoffs`).
    """

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def add(self, token_id: str, expires_at: datetime) -> None:
        ttl = int((expires_at - datetime.now(UTC)).total_seconds()) + 1
        if ttl > 0:
            await self.redis.set(DENYLIST_PREFIX + token_id, b"1", ex=ttl)

    async def revoke_issued_before(self, account_id: str, cutoff: datetime, *, ttl: int) -> None:
        """Refuse the account's tokens issued before `cutoff` for the next `ttl` seconds."""
        await self.redis.set(VALID_AFTER_PREFIX + account_id, str(_millis(cutoff)), ex=ttl)

    async def revoked(self, token_id: str, account_id: str, issued_at: datetime) -> bool:
        """True when the token was logged out or issued before its account's cut-off."""
        try:
            denied, valid_after = await self.redis.mget(
                DENYLIST_PREFIX + token_id, VALID_AFTER_PREFIX + account_id
            )
        except (RedisError, OSError) as exc:
            unavailable(exc)
            return False
        if denied is not None:
            return True
        try:
            return valid_after is not None and _millis(issued_at) < int(valid_after)
        except ValueError:
            return False

    async def contains(self, token_id: str) -> bool:
        try:
            return bool(await self.redis.exists(DENYLIST_PREFIX + token_id))
        except (RedisError, OSError) as exc:
            log.warning("token denylist unavailable, accepting token: %s", exc)
            return False


def unavailable(exc: Exception) -> None:
    """The warning of a revocation check that could not ask Redis and accepts the token."""
    log.warning("token revocation list unavailable, accepting token: %s", exc)


def _millis(at: datetime) -> int:
    return round(at.timestamp() * 1000)


REVOKED = "access token has been revoked"


class Authenticator:
    """Turns a bearer token into a `Caller`, or raises `Unauthenticated` with a safe message."""

    def __init__(
        self, keys: JwksKeySet, denylist: TokenDenylist | None = None, *, service_token: str = ""
    ) -> None:
        self.keys = keys
        self.denylist = denylist
        self._service_token = service_token.encode()

    async def authenticate(self, token: str) -> Caller:
        verified = await self.verify(token)
        check = verified.check
        if self.denylist is not None and await self.denylist.revoked(
            check.token_id, check.account_id, check.issued_at
        ):
            raise Unauthenticated(REVOKED)
        return verified.caller

    async def verify(self, token: str) -> VerifiedToken:
        """The token's signature and claims, without the denylist: for a caller that checks the
        revocation in a Redis round trip it makes anyway (the gateway's cost budget)."""
        try:
            claims = await self.keys.verify(token)
        except InvalidToken as exc:
            raise Unauthenticated(f"invalid access token: {exc.reason}") from None
        role = claims.role if claims.role in ("CUSTOMER", "ADMIN") else ""
        if not role:
            raise Unauthenticated("invalid access token: unknown role")
        caller = Caller(
            account_id=claims.subject,
            role=role,
            token_id=claims.jti,
            expires_at=claims.expires_at,
            token=token,
            email_verified=claims.raw.get("email_verified") is True,
        )
        return VerifiedToken(caller, RevocationCheck(claims.jti, claims.subject, claims.issued_at))

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
