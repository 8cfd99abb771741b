"""Per-caller budgets of cost points: a leaky bucket in Redis, one atomic Lua script.

`gateway.extensions.CostLimiter` charges them around each operation.

Each caller (its account id, or its client address when anonymous) has a bucket of `capacity`
points that refills at `restore_rate` points a second. An operation is admitted only if its
requested cost fits in what is left; after it ran, what it did not use (requested minus actual
cost) goes back. Every answer reports the bucket in `extensions.cost`.

If Redis cannot be reached the gateway fails open: operations are admitted, the budget is
reported as unknown (`currentlyAvailable: null`) and a warning is logged; for the next few
seconds Redis is not asked again, so an outage adds no latency to every request.
"""

from __future__ import annotations

import contextvars
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from servicekit.auth import RevocationCheck, TokenDenylist, unavailable

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)

# KEYS[1] the bucket; ARGV capacity, restore rate (points/s), cost (negative refunds, 0 peeks),
# and optionally what an admitted operation is charged when less than its cost (a cached answer
# whose actual cost is known: take and refund in one step).
# Optionally also KEYS[2] a token's denylist entry, KEYS[3] its account's cut-off (ms) and ARGV[5]
# the token's issue time (ms): a revoked token touches no bucket and gets {-1, ''}, so that the
# token check (servicekit.auth.TokenDenylist, same decision) costs no round trip of its own.
# Time comes from the Redis server, so that every gateway instance agrees on it.
LEAKY_BUCKET = """
if KEYS[2] then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return {-1, ''}
  end
  local valid_after = tonumber(redis.call('GET', KEYS[3]) or '')
  if valid_after ~= nil and tonumber(ARGV[5]) < valid_after then
    return {-1, ''}
  end
end
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local charge = tonumber(ARGV[4] or ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'points', 'at')
local points = tonumber(state[1])
local at = tonumber(state[2])
if points == nil or at == nil then
  points = capacity
  at = now
end
points = math.min(capacity, points + math.max(0, now - at) * rate)
local admitted = 0
if cost <= points then
  points = math.min(capacity, points - charge)
  admitted = 1
end
redis.call('HSET', KEYS[1], 'points', tostring(points), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - points) / rate * 1000) + 1000)
return {admitted, tostring(points)}
"""


@dataclass(frozen=True)
class Budget:
    """A caller's bucket after one step. `available` is None when Redis could not be asked."""

    admitted: bool
    available: float | None
    capacity: int
    restore_rate: float

    def retry_after(self, cost: int) -> int:
        """Whole seconds until `cost` points are there (at least 1)."""
        missing = cost - (self.available or 0.0)
        return max(1, math.ceil(missing / self.restore_rate))

    def reset_at(self) -> datetime | None:
        """When the bucket is full again."""
        if self.available is None:
            return None
        return datetime.fromtimestamp(time.time() + (self.capacity - self.available) / self.restore_rate, UTC)

    def throttle_status(self) -> dict[str, Any]:
        return {
            "maximumAvailable": self.capacity,
            "currentlyAvailable": None if self.available is None else math.floor(self.available),
            "restoreRate": self.restore_rate,
        }


class CostBucket:
    PREFIX = "gateway:cost-budget:"
    RETRY_REDIS_AFTER = 5.0

    def __init__(self, redis: aioredis.Redis, *, capacity: int, restore_rate: float) -> None:
        self.capacity = capacity
        self.restore_rate = restore_rate
        self._script = redis.register_script(LEAKY_BUCKET)
        self._down_until = 0.0

    async def take(self, caller: str, cost: int) -> Budget:
        return await self._run(caller, cost)

    async def take_known(self, caller: str, requested: int, actual: int) -> Budget:
        """Admit an operation of `requested` points whose actual cost is already known, and charge
        only that: `take` and `refund` in one round trip."""
        return await self._run(caller, requested, actual)

    async def refund(self, caller: str, points: int) -> Budget:
        return await self._run(caller, -points)

    async def peek(self, caller: str) -> Budget:
        return await self._run(caller, 0)

    async def take_unless_revoked(
        self,
        caller: str,
        check: RevocationCheck,
        denylist: TokenDenylist,
        cost: int,
        charge: int | None = None,
    ) -> Budget | None:
        """`take` (`take_known` with `charge`, `peek` with 0) for a verified token, whose
        revocation is checked in the same round trip: None, and nothing charged, when revoked.

        Redis unreachable: the token is accepted, as `TokenDenylist.revoked` would. While the
        buckets wait for Redis to come back, the denylist is still asked on its own."""
        if time.monotonic() < self._down_until:
            return (
                None
                if await denylist.revoked(check.token_id, check.account_id, check.issued_at)
                else self._unknown()
            )
        charged = cost if charge is None else charge
        args = [self.capacity, self.restore_rate, cost, charged, check.issued_at_millis]
        try:
            reply = await self._script(keys=[self.PREFIX + caller, *check.keys], args=args)
        except (RedisError, OSError) as exc:
            unavailable(exc)
            return self._down(exc)
        return None if int(reply[0]) < 0 else self._budget(reply)

    async def _run(self, caller: str, cost: int, charge: int | None = None) -> Budget:
        if time.monotonic() < self._down_until:
            return self._unknown()
        args = [self.capacity, self.restore_rate, cost] + ([] if charge is None else [charge])
        try:
            reply = await self._script(keys=[self.PREFIX + caller], args=args)
        except (RedisError, OSError) as exc:
            return self._down(exc)
        return self._budget(reply)

    def _down(self, exc: Exception) -> Budget:
        self._down_until = time.monotonic() + self.RETRY_REDIS_AFTER
        log.warning("cost budgets unavailable, admitting every operation for now: %s", exc)
        return self._unknown()

    def _budget(self, reply: Any) -> Budget:
        admitted, points = reply
        return Budget(
            admitted=bool(admitted),
            available=float(points),
            capacity=self.capacity,
            restore_rate=self.restore_rate,
        )

    def _unknown(self) -> Budget:
        return Budget(admitted=True, available=None, capacity=self.capacity, restore_rate=self.restore_rate)


def bucket_of(account_id: str | None, client_address: str) -> str:
    """The bucket of a verified account, or of the client address of anyone else."""
    return f"account:{account_id}" if account_id is not None else f"address:{client_address}"


@dataclass
class OperationBudget:
    """What the `rateLimit` query reports for the operation it is part of."""

    cost: int
    budget: Budget | None


current_operation_budget: contextvars.ContextVar[OperationBudget | None] = contextvars.ContextVar(
    "current_operation_budget", default=None
)
