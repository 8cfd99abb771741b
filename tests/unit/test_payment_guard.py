"""The guard around payment providers: timeout, retries of transient errors only, circuit breaker.

The adapter here is an in-memory script of answers (a provider is a remote party we never run);
the database-backed simulated provider is exercised by the integration tests.
"""

from __future__ import annotations

import asyncio
from collections import deque

from payment import models
from payment.provider import Declined, GuardedProvider, PaymentProvider, ProviderUnavailable
from servicekit.resilience import BreakerState


class ScriptedProvider(PaymentProvider):
    name = "scripted"

    def __init__(self, *answers: str) -> None:
        self.answers = deque(answers)
        self.calls = 0

    def check_token(self, token: str) -> str | None:
        return None

    async def _next(self) -> str:
        self.calls += 1
        answer = self.answers.popleft() if self.answers else "ok"
        if answer == "hang":
            await asyncio.Event().wait()
        if answer == "unavailable":
            raise ProviderUnavailable("503")
        if answer == "declined":
            raise Declined(models.DECLINED, "the card was declined")
        return f"ref-{self.calls}"

    async def authorize(self, *, token, amount_minor, currency, idempotency_key):  # type: ignore[no-untyped-def]
        return await self._next()

    async def refund(self, *, reference, amount_minor, currency, idempotency_key):  # type: ignore[no-untyped-def]
        return await self._next()

    async def void(self, *, reference, idempotency_key):  # type: ignore[no-untyped-def]
        return await self._next()


def guard(provider: ScriptedProvider, *, attempts: int = 3, threshold: int = 5) -> GuardedProvider:
    return GuardedProvider.create(
        provider,
        timeout=0.05,
        attempts=attempts,
        backoff_base=0.001,
        backoff_max=0.002,
        failure_threshold=threshold,
        cool_down=60.0,
    )


async def authorize(guarded: GuardedProvider):  # type: ignore[no-untyped-def]
    return await guarded.authorize(token="tok", amount_minor=100, currency="EUR", idempotency_key="k")


async def test_a_transient_error_is_retried_until_an_answer():
    provider = ScriptedProvider("unavailable", "unavailable", "ok")

    outcome = await authorize(guard(provider))

    assert (outcome.succeeded, outcome.reference, outcome.attempts) == (True, "ref-3", 3)


async def test_transient_errors_past_the_attempts_fail_as_retryable():
    provider = ScriptedProvider("unavailable", "unavailable", "unavailable", "ok")

    outcome = await authorize(guard(provider, attempts=3))

    assert (outcome.failure_reason, outcome.retryable, outcome.attempts) == (
        models.PROVIDER_UNAVAILABLE,
        True,
        3,
    )
    assert provider.calls == 3


async def test_a_hanging_call_times_out_and_is_retried():
    provider = ScriptedProvider("hang", "ok")

    outcome = await authorize(guard(provider))

    assert (outcome.succeeded, outcome.attempts) == (True, 2)


async def test_every_attempt_timing_out_fails_as_a_retryable_timeout():
    provider = ScriptedProvider("hang", "hang")

    outcome = await authorize(guard(provider, attempts=2))

    assert (outcome.failure_reason, outcome.retryable, outcome.attempts) == (models.PROVIDER_TIMEOUT, True, 2)


async def test_a_decline_is_not_retried_and_does_not_count_against_the_provider():
    provider = ScriptedProvider("unavailable", "declined")
    guarded = guard(provider, threshold=2)

    outcome = await authorize(guarded)

    assert (outcome.failure_reason, outcome.retryable, outcome.attempts) == (models.DECLINED, False, 2)
    assert guarded.breaker.consecutive_failures == 0


async def test_an_open_breaker_fails_fast_without_calling_the_provider():
    provider = ScriptedProvider("unavailable", "unavailable", "ok")
    guarded = guard(provider, attempts=3, threshold=2)

    first = await authorize(guarded)
    second = await authorize(guarded)

    assert (first.failure_reason, first.attempts) == (models.PROVIDER_UNAVAILABLE, 2)
    assert guarded.breaker.state is BreakerState.OPEN
    assert (second.failure_reason, second.retryable, second.attempts) == (
        models.PROVIDER_UNAVAILABLE,
        True,
        0,
    )
    assert provider.calls == 2
