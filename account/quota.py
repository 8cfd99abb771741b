"""Requests counted per key in fixed windows, in Redis: how often one e-mail or one client address
may ask for a password-reset link or a data export."""

from __future__ import annotations

import hashlib
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from servicekit.errors import RateLimited, Unavailable

log = logging.getLogger(__name__)

# KEYS[1] the counter; ARGV the window (s). Returns the count so far and the seconds left.
COUNT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return {count, redis.call('TTL', KEYS[1])}
"""


class RequestQuota:
    """At most `limit` requests per key in each `window` seconds; every request is counted, admitted
    or not, so that a caller who keeps asking stays refused. When Redis cannot be asked the request
    is refused (Unavailable): a quota that cannot count would let every request through."""

    def __init__(self, redis: aioredis.Redis, *, name: str, limit: int, window: int) -> None:
        self.name = name
        self.limit = limit
        self.window = window
        self._script = redis.register_script(COUNT)

    async def spend(self, key: str, message: str) -> None:
        """Count one request for `key`; RateLimited with `message` past the limit."""
        hashed = hashlib.sha256(key.encode()).hexdigest()
        try:
            count, ttl = await self._script(keys=[f"quota:{self.name}:{hashed}"], args=[self.window])
        except (RedisError, OSError) as exc:
            log.warning("request quota %s unavailable, refusing: %s", self.name, exc)
            raise Unavailable("this operation is temporarily unavailable; try again shortly") from None
        if int(count) > self.limit:
            raise RateLimited(message, retry_after=max(1, int(ttl)))
