"""A circuit breaker for calls to a dependency we do not control (a payment provider).

CLOSED lets calls through and counts failures in a row; at `failure_threshold` it turns OPEN
and every call fails fast with `BreakerOpen` until `cool_down` seconds have passed. Then it is
HALF_OPEN: one trial call goes through (others still fail fast); its success closes the
breaker, its failure opens it again for another cool-down.

Written here rather than taken from `purgatory` or `aiobreaker`: purgatory lets every
concurrent call through while half-open (a burst onto a provider that may still be down),
times the cool-down with the wall clock, and keeps its state behind its unit of work, so
reading it for an RPC or a metric means reaching into its internals; aiobreaker has had no
release since 2021. This one uses the monotonic clock (injectable, so its tests never wait),
admits a single half-open trial, and exposes its state as plain properties.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from types import TracebackType

from servicekit.metrics import track_breaker

log = logging.getLogger(__name__)


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpen(Exception):
    """The call was not made: the breaker is open (or its half-open trial is in flight)."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit breaker {name!r} is open; retry in {retry_after:.1f}s")
        self.name = name
        self.retry_after = retry_after


class CircuitBreaker:
    """Guard each call with `async with breaker:`.

    `counts_as_failure(exc)` decides which exceptions are the dependency's fault; any other
    exception means the dependency answered (e.g. a card declined), which counts as a success.
    Cancellation counts as neither.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        cool_down: float,
        counts_as_failure: Callable[[BaseException], bool] = lambda exc: True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cool_down < 0:
            raise ValueError("cool_down must not be negative")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self.counts_as_failure = counts_as_failure
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at: float | None = None
        self._opened_at_wall: datetime | None = None
        self._trial_in_flight = False
        self.times_opened = 0
        track_breaker(self)

    # -- what operators and metrics read ----------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """OPEN turns HALF_OPEN by itself once the cool-down is over."""
        if self._state is BreakerState.OPEN and self._cool_down_left() <= 0:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def opened_at(self) -> datetime | None:
        """When the breaker last opened (wall clock, for people); None if it never did."""
        return self._opened_at_wall

    def reset(self) -> None:
        """As new: CLOSED, no failures, never opened (operators, tests)."""
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = None
        self._opened_at_wall = None
        self._trial_in_flight = False
        self.times_opened = 0

    # -- guarding a call --------------------------------------------------------------------

    async def __aenter__(self) -> CircuitBreaker:
        self._admit()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.record_success()
        elif not isinstance(exc, Exception):
            # Cancelled (or the process is stopping): the dependency was not judged.
            self._trial_in_flight = False
        elif self.counts_as_failure(exc):
            self.record_failure()
        else:
            self.record_success()

    def _admit(self) -> None:
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.OPEN or self._trial_in_flight:
            raise BreakerOpen(self.name, max(self._cool_down_left(), 0.0))
        # HALF_OPEN and nobody is trying yet: this call is the trial.
        self._state = BreakerState.HALF_OPEN
        self._trial_in_flight = True

    def record_success(self) -> None:
        if self._state is not BreakerState.CLOSED:
            log.info("circuit breaker %s closed", self.name)
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._open()
        self._trial_in_flight = False

    def _open(self) -> None:
        if self._state is not BreakerState.OPEN:
            self.times_opened += 1
        log.warning(
            "circuit breaker %s open after %d failures in a row; cool-down %.1fs",
            self.name,
            self._failures,
            self.cool_down,
        )
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._opened_at_wall = datetime.now(UTC)

    def _cool_down_left(self) -> float:
        if self._opened_at is None:
            return 0.0
        return self._opened_at + self.cool_down - self._clock()
