"""Payment providers: the adapter interface, the built-in simulated provider, and the guard every
call goes through (a timeout per call, retries with exponential backoff and jitter for transient
errors only, and a circuit breaker).

Every operation carries the payment's idempotency key; a provider answers a repeated call with
the same key by what the first call did, so a retry after a timeout never charges twice.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import KW_ONLY, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from payment import models
from payment.models import SimulatedLedgerEntry
from servicekit.db import reads, transaction
from servicekit.resilience import BreakerOpen, CircuitBreaker

log = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 255


class ProviderError(Exception):
    """Something the provider said or failed to say."""


class Declined(ProviderError):
    """The provider answered no. Trying again gives the same answer."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # models.DECLINED or models.INVALID_TOKEN
        self.message = message


class ProviderUnavailable(ProviderError):
    """A transient failure (a 5xx, a reset connection): trying again later may succeed."""


class ProviderTimeout(ProviderUnavailable):
    """The provider did not answer within the timeout."""


class PaymentProvider(abc.ABC):
    """What a provider adapter implements. Each method raises `Declined` for a refusal and
    `ProviderUnavailable` for a transient failure; timeouts are the guard's business."""

    name: str

    @abc.abstractmethod
    def check_token(self, token: str) -> str | None:
        """None when the provider accepts the token, else why not (for people). Charges nothing."""

    @abc.abstractmethod
    async def authorize(self, *, token: str, amount_minor: int, currency: str, idempotency_key: str) -> str:
        """Charge; returns the provider's reference for the charge."""

    @abc.abstractmethod
    async def refund(self, *, reference: str, amount_minor: int, currency: str, idempotency_key: str) -> str:
        """Pay the charge back in full; returns the provider's reference for the refund."""

    @abc.abstractmethod
    async def void(self, *, reference: str | None, idempotency_key: str) -> str:
        """Reverse whatever was authorized under the key before settlement (nothing, if nothing
        was); afterwards the key can no longer charge. Returns a reference for the void."""


SUCCESS_TOKENS = frozenset({"tok_visa", "tok_mastercard"})
DECLINE_TOKEN = "tok_chargeDeclined"
TIMEOUT_TOKEN = "tok_timeout"
UNAVAILABLE_TOKEN = "tok_unavailable"
KNOWN_TOKENS = SUCCESS_TOKENS | {DECLINE_TOKEN, TIMEOUT_TOKEN, UNAVAILABLE_TOKEN}

AUTHORIZE, REFUND, VOID = "authorize", "refund", "void"


class SimulatedProvider(PaymentProvider):
    """The built-in provider, answering by test token: `tok_visa` succeeds,
    `tok_chargeDeclined` declines, `tok_timeout` hangs past any timeout, `tok_unavailable` fails
    transiently, and any other token is invalid.

    Its books are the `simulated_ledger` table (completed operations by idempotency key), so a
    repeated call is answered from there, also after this process restarts; `calls` counts
    every call that reached it, answered or not (the latest 100,000), for tests and chaos checks.
    """

    name = "simulated"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        hang: float = 60.0,
        latency: float = 0.0,
        failure_rate: float = 0.0,
    ) -> None:
        """`latency` and `failure_rate` make every token's provider slow or flaky (the fault
        suite's weather): a call fails first with that probability, transiently and having done
        nothing; a call that went through answers after a random delay of up to `latency`
        seconds, so a caller's timeout can expire after the charge was made, as with a real
        provider."""
        self.sessions = sessions
        self.hang = hang
        self.latency = latency
        self.failure_rate = failure_rate
        self.calls: deque[tuple[str, str]] = deque(maxlen=100_000)

    def check_token(self, token: str) -> str | None:
        if token in KNOWN_TOKENS:
            return None
        return "the payment provider does not know this token"

    def calls_for(self, idempotency_key: str, operation: str = AUTHORIZE) -> int:
        return sum(1 for op, key in self.calls if (op, key) == (operation, idempotency_key))

    async def ledger(self, idempotency_key: str) -> list[SimulatedLedgerEntry]:
        """Every completed operation under the key (authorize, refund, void)."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(SimulatedLedgerEntry)
                .where(SimulatedLedgerEntry.idempotency_key == idempotency_key)
                .order_by(SimulatedLedgerEntry.created_at)
            )
            return list(rows)

    async def authorize(self, *, token: str, amount_minor: int, currency: str, idempotency_key: str) -> str:
        self.calls.append((AUTHORIZE, idempotency_key))
        return await self._in_weather(self._authorize(token, amount_minor, currency, idempotency_key))

    async def _authorize(self, token: str, amount_minor: int, currency: str, idempotency_key: str) -> str:
        if (earlier := await self._entry(AUTHORIZE, idempotency_key)) is not None:
            return self._answer(earlier)
        if await self._entry(VOID, idempotency_key) is not None:
            raise Declined(models.DECLINED, "this authorization was voided")
        if token == TIMEOUT_TOKEN:
            await asyncio.sleep(self.hang)
            raise ProviderUnavailable("the simulated provider gave up after hanging")
        if token == UNAVAILABLE_TOKEN:
            raise ProviderUnavailable("the simulated provider is temporarily unavailable (503)")
        if token == DECLINE_TOKEN:
            outcome, reference = "declined", ""
        elif token in SUCCESS_TOKENS:
            outcome, reference = "succeeded", f"sim_ch_{uuid.uuid4().hex}"
        else:
            outcome, reference = "invalid_token", ""
        entry = await self._record(AUTHORIZE, idempotency_key, outcome, reference, amount_minor, currency)
        return self._answer(entry)

    async def refund(self, *, reference: str, amount_minor: int, currency: str, idempotency_key: str) -> str:
        self.calls.append((REFUND, idempotency_key))
        return await self._in_weather(self._refund(reference, amount_minor, currency, idempotency_key))

    async def _refund(self, reference: str, amount_minor: int, currency: str, idempotency_key: str) -> str:
        if (earlier := await self._entry(REFUND, idempotency_key)) is not None:
            return earlier.reference
        charge = await self._entry(AUTHORIZE, idempotency_key)
        if charge is None or charge.outcome != "succeeded" or charge.reference != reference:
            raise Declined(models.DECLINED, "no such charge to refund")
        if await self._entry(VOID, idempotency_key) is not None:
            raise Declined(models.DECLINED, "the charge was voided")
        entry = await self._record(
            REFUND, idempotency_key, "succeeded", f"sim_re_{uuid.uuid4().hex}", amount_minor, currency
        )
        return entry.reference

    async def void(self, *, reference: str | None, idempotency_key: str) -> str:
        self.calls.append((VOID, idempotency_key))
        return await self._in_weather(self._void(idempotency_key))

    async def _void(self, idempotency_key: str) -> str:
        if (earlier := await self._entry(VOID, idempotency_key)) is not None:
            return earlier.reference
        if await self._entry(REFUND, idempotency_key) is not None:
            raise Declined(models.DECLINED, "the charge was refunded")
        charge = await self._entry(AUTHORIZE, idempotency_key)
        amount, currency = (charge.amount_minor, charge.currency) if charge else (0, "XXX")
        entry = await self._record(
            VOID, idempotency_key, "succeeded", f"sim_vo_{uuid.uuid4().hex}", amount, currency
        )
        return entry.reference

    async def _in_weather(self, operation: Coroutine[Any, Any, str]) -> str:
        """Run one operation under the configured failure rate and latency."""
        if self.failure_rate and random.random() < self.failure_rate:
            operation.close()  # never started: nothing happened
            raise ProviderUnavailable("the simulated provider failed (503), having done nothing")
        try:
            answer = await operation
        except Declined:
            await self._slow()
            raise
        await self._slow()
        return answer

    async def _slow(self) -> None:
        if self.latency:
            await asyncio.sleep(random.uniform(0, self.latency))

    @staticmethod
    def _answer(entry: SimulatedLedgerEntry) -> str:
        if entry.outcome == "succeeded":
            return entry.reference
        if entry.outcome == "declined":
            raise Declined(models.DECLINED, "the card was declined")
        raise Declined(models.INVALID_TOKEN, "the payment provider does not know this token")

    async def _entry(self, operation: str, idempotency_key: str) -> SimulatedLedgerEntry | None:
        async with reads(self.sessions) as session:
            return await session.get(SimulatedLedgerEntry, (operation, idempotency_key))

    async def _record(
        self, operation: str, key: str, outcome: str, reference: str, amount_minor: int, currency: str
    ) -> SimulatedLedgerEntry:
        """Write the outcome unless a concurrent call with the key wrote first; the first one stands."""
        async with transaction(self.sessions) as session:
            await session.execute(
                insert(SimulatedLedgerEntry)
                .values(
                    operation=operation,
                    idempotency_key=key,
                    outcome=outcome,
                    reference=reference,
                    amount_minor=amount_minor,
                    currency=currency,
                )
                .on_conflict_do_nothing()
            )
            entry = await session.get(SimulatedLedgerEntry, (operation, key))
        assert entry is not None
        return entry


# ---------------------------------------------------------------------------------------------
# The guard
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a guarded provider operation came to."""

    reference: str | None = None
    failure_reason: str | None = None  # one of models.FAILURE_REASONS
    message: str = ""
    attempts: int = 0

    @property
    def succeeded(self) -> bool:
        return self.failure_reason is None

    @property
    def retryable(self) -> bool:
        return self.failure_reason in models.RETRYABLE_REASONS


def _is_provider_fault(exc: BaseException) -> bool:
    """What the breaker counts: timeouts, transient errors and anything unexpected. A decline is
    an answer, so it shows the provider is up."""
    return not isinstance(exc, Declined)


@dataclass(eq=False, slots=True)
class GuardedProvider:
    """Runs every provider call through a circuit breaker, a timeout and retries.

    Per attempt: the breaker admits the call (or it fails fast with no call made), then the call
    runs under `asyncio.timeout`. Timeouts and transient errors are retried up to `attempts`
    calls in all, waiting `backoff_base * 2**n` plus jitter (at most `backoff_max`) in between;
    declines and an open breaker are not retried.
    """

    provider: PaymentProvider
    _: KW_ONLY
    timeout: float
    attempts: int
    backoff_base: float
    backoff_max: float
    breaker: CircuitBreaker

    @classmethod
    def create(
        cls,
        provider: PaymentProvider,
        *,
        timeout: float,
        attempts: int,
        backoff_base: float,
        backoff_max: float,
        failure_threshold: int,
        cool_down: float,
    ) -> GuardedProvider:
        breaker = CircuitBreaker(
            f"payment-provider-{provider.name}",
            failure_threshold=failure_threshold,
            cool_down=cool_down,
            counts_as_failure=_is_provider_fault,
        )
        return cls(
            provider,
            timeout=timeout,
            attempts=attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            breaker=breaker,
        )

    @property
    def name(self) -> str:
        return self.provider.name

    def check_token(self, token: str) -> str | None:
        return self.provider.check_token(token)

    async def authorize(
        self, *, token: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> Outcome:
        return await self._guarded(
            lambda: self.provider.authorize(
                token=token, amount_minor=amount_minor, currency=currency, idempotency_key=idempotency_key
            )
        )

    async def refund(
        self, *, reference: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> Outcome:
        return await self._guarded(
            lambda: self.provider.refund(
                reference=reference,
                amount_minor=amount_minor,
                currency=currency,
                idempotency_key=idempotency_key,
            )
        )

    async def void(self, *, reference: str | None, idempotency_key: str) -> Outcome:
        return await self._guarded(
            lambda: self.provider.void(reference=reference, idempotency_key=idempotency_key)
        )

    async def _guarded(self, call: Callable[[], Awaitable[str]]) -> Outcome:
        attempts = 0

        async def once() -> str:
            nonlocal attempts
            async with self.breaker:
                attempts += 1
                try:
                    async with asyncio.timeout(self.timeout):
                        return await call()
                except TimeoutError:
                    raise ProviderTimeout(f"no answer within {self.timeout:g}s") from None

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(
                multiplier=self.backoff_base, max=self.backoff_max, jitter=self.backoff_base
            ),
            retry=retry_if_exception_type(ProviderUnavailable),
            reraise=True,
        )
        try:
            reference: str = await retrying(once)
        except BreakerOpen:
            return Outcome(
                failure_reason=models.PROVIDER_UNAVAILABLE,
                message="the payment provider is unavailable (circuit breaker open)",
                attempts=attempts,
            )
        except ProviderTimeout as exc:
            return Outcome(failure_reason=models.PROVIDER_TIMEOUT, message=str(exc), attempts=attempts)
        except ProviderUnavailable as exc:
            return Outcome(failure_reason=models.PROVIDER_UNAVAILABLE, message=str(exc), attempts=attempts)
        except Declined as exc:
            return Outcome(failure_reason=exc.reason, message=exc.message, attempts=attempts)
        if attempts > 1:
            log.info("payment provider answered after %d attempts", attempts)
        return Outcome(reference=reference, attempts=attempts)
