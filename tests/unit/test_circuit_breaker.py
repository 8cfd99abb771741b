"""The circuit breaker on a hand-driven clock: no waiting, no servers."""

from __future__ import annotations

import asyncio

import pytest

from servicekit.resilience import BreakerOpen, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Boom(Exception):
    pass


class Answered(Exception):
    """Stands for a decline: the dependency answered, so it is up."""


def make(clock: Clock, threshold: int = 3, cool_down: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker(
        "provider",
        failure_threshold=threshold,
        cool_down=cool_down,
        counts_as_failure=lambda exc: not isinstance(exc, Answered),
        clock=clock,
    )


async def fail(breaker: CircuitBreaker, exc: Exception | None = None) -> None:
    with pytest.raises(type(exc) if exc else Boom):
        async with breaker:
            raise exc or Boom()


async def succeed(breaker: CircuitBreaker) -> None:
    async with breaker:
        pass


async def test_a_new_breaker_is_closed_with_no_failures():
    breaker = make(Clock())

    assert (breaker.state, breaker.consecutive_failures, breaker.opened_at) == (BreakerState.CLOSED, 0, None)


async def test_it_opens_after_the_threshold_of_failures_in_a_row():
    breaker = make(Clock(), threshold=3)

    await fail(breaker)
    await fail(breaker)
    assert breaker.state is BreakerState.CLOSED
    await fail(breaker)

    assert breaker.state is BreakerState.OPEN
    assert breaker.consecutive_failures == 3
    assert breaker.opened_at is not None
    assert breaker.times_opened == 1


async def test_a_success_resets_the_count_of_failures():
    breaker = make(Clock(), threshold=3)

    await fail(breaker)
    await fail(breaker)
    await succeed(breaker)
    await fail(breaker)
    await fail(breaker)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 2


async def test_an_answer_that_is_not_a_failure_counts_as_a_success():
    breaker = make(Clock(), threshold=2)

    await fail(breaker)
    await fail(breaker, Answered())
    await fail(breaker)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 1


async def test_while_open_calls_fail_fast_without_running():
    clock = Clock()
    breaker = make(clock, threshold=1, cool_down=10.0)
    await fail(breaker)
    ran = False
    clock.now += 4.0

    with pytest.raises(BreakerOpen) as caught:
        async with breaker:
            ran = True

    assert ran is False
    assert caught.value.retry_after == pytest.approx(6.0)
    assert breaker.state is BreakerState.OPEN


async def test_after_the_cool_down_it_is_half_open_and_a_successful_trial_closes_it():
    clock = Clock()
    breaker = make(clock, threshold=1, cool_down=10.0)
    await fail(breaker)

    clock.now += 10.0
    assert breaker.state is BreakerState.HALF_OPEN
    await succeed(breaker)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


async def test_a_failed_trial_opens_it_again_for_a_whole_cool_down():
    clock = Clock()
    breaker = make(clock, threshold=3, cool_down=10.0)
    for _ in range(3):
        await fail(breaker)
    clock.now += 11.0

    await fail(breaker)

    assert breaker.state is BreakerState.OPEN
    clock.now += 9.0
    assert breaker.state is BreakerState.OPEN
    clock.now += 1.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.times_opened == 2


async def test_half_open_admits_one_trial_at_a_time():
    clock = Clock()
    breaker = make(clock, threshold=1, cool_down=1.0)
    await fail(breaker)
    clock.now += 1.0
    trial_started = asyncio.Event()
    release = asyncio.Event()

    async def trial() -> None:
        async with breaker:
            trial_started.set()
            await release.wait()

    task = asyncio.create_task(trial())
    await trial_started.wait()
    with pytest.raises(BreakerOpen):
        async with breaker:
            pass
    release.set()
    await task

    assert breaker.state is BreakerState.CLOSED


async def test_a_cancelled_trial_neither_closes_nor_reopens_it():
    clock = Clock()
    breaker = make(clock, threshold=1, cool_down=1.0)
    await fail(breaker)
    clock.now += 1.0
    started = asyncio.Event()

    async def trial() -> None:
        async with breaker:
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(trial())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert breaker.state is BreakerState.HALF_OPEN
    await succeed(breaker)
    assert breaker.state is BreakerState.CLOSED


async def test_reset_closes_it():
    breaker = make(Clock(), threshold=1)
    await fail(breaker)

    breaker.reset()

    assert (breaker.state, breaker.consecutive_failures, breaker.opened_at) == (BreakerState.CLOSED, 0, None)


@pytest.mark.parametrize(("threshold", "cool_down"), [(0, 1.0), (-1, 1.0), (1, -0.1)])
def test_nonsense_settings_are_refused(threshold, cool_down):
    with pytest.raises(ValueError):  # noqa: PT011
        CircuitBreaker("x", failure_threshold=threshold, cool_down=cool_down)
