"""Pure pieces of servicekit: cursors, money, error statuses, settings."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import SimpleNamespace

import grpc
import pytest

from servicekit.cursor import CursorCodec
from servicekit.errors import AlreadyExists, InvalidArgument, NotFound, RateLimited, Violations
from servicekit.money import format_money, is_currency, to_decimal, to_minor
from servicekit.rpc_status import to_grpc_status
from servicekit.runtime import ServiceRuntime
from servicekit.settings import PlatformSettings


def test_a_cursor_round_trips_and_any_change_is_refused():
    codec = CursorCodec("secret", purpose="products")
    cursor = codec.encode({"id": "abc", "price": 1250})

    assert codec.decode(cursor) == {"id": "abc", "price": 1250}
    for forged in (cursor[:-2] + "AA", "x" + cursor, "", "%%%", "A" * 600):
        with pytest.raises(InvalidArgument) as caught:
            codec.decode(forged)
        assert caught.value.violations[0].field == "after"


def test_a_cursor_of_one_listing_does_not_open_another():
    products = CursorCodec("secret", purpose="products").encode({"id": "abc"})

    with pytest.raises(InvalidArgument):
        CursorCodec("secret", purpose="orders").decode(products)
    with pytest.raises(InvalidArgument):
        CursorCodec("other secret", purpose="products").decode(products)


@pytest.mark.parametrize(
    ("minor", "currency", "decimal"),
    [
        (1250, "EUR", "12.50"),
        (100, "JPY", "100"),
        (1005, "BHD", "1.005"),
        (0, "USD", "0.00"),
        (-5, "USD", "-0.05"),
    ],
)
def test_money_converts_exactly_by_the_currencys_minor_units(minor, currency, decimal):
    assert to_decimal(minor, currency) == Decimal(decimal)
    assert str(to_decimal(minor, currency)) == decimal
    assert to_minor(Decimal(decimal), currency) == minor


@pytest.mark.parametrize("value", ["1.234", "abc", "NaN", "Infinity", "1e400000"])
def test_money_refuses_amounts_that_do_not_fit_the_currency(value):
    with pytest.raises(ValueError):  # noqa: PT011 - the message is checked where it is shown
        to_minor(value, "EUR")


def test_only_current_iso_4217_codes_are_currencies():
    assert [is_currency(c) for c in ("EUR", "USD", "JPY", "DEM", "XXX", "eur", "", "EURO")] == [
        True,
        True,
        True,
        False,
        False,
        False,
        False,
        False,
    ]
    assert format_money(1250, "EUR") == "12.50 EUR"


def test_errors_become_statuses_with_their_details():
    violations = Violations()
    violations.add("email", "is required")
    violations.add("name", "is too long")
    with pytest.raises(InvalidArgument) as caught:
        violations.raise_if_any()

    bad = to_grpc_status(caught.value)
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
    assert bad.details == "email: is required; name: is too long"
    assert bad.trailing_metadata[0][0] == "grpc-status-details-bin"
    assert to_grpc_status(NotFound("order not found")).code == grpc.StatusCode.NOT_FOUND
    assert to_grpc_status(AlreadyExists("taken", field="sku")).code == grpc.StatusCode.ALREADY_EXISTS
    assert to_grpc_status(RateLimited("slow down", retry_after=3)).code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_no_violation_raises_nothing():
    Violations().raise_if_any()


def test_settings_read_unprefixed_shared_values(monkeypatch):
    monkeypatch.setenv("ECOMMERCE_ENV", "production")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")

    settings = PlatformSettings()

    assert settings.production
    assert settings.redis_url == "redis://cache:6379/1"


def test_an_unknown_environment_name_is_refused(monkeypatch):
    monkeypatch.setenv("ECOMMERCE_ENV", "staging-ish")

    with pytest.raises(ValueError, match=r"ECOMMERCE_ENV|env"):
        PlatformSettings()


async def test_a_background_loop_ended_by_a_stray_cancellation_is_restarted() -> None:
    """A library may let its own CancelledError escape (aiokafka's consumer stop did): that is a
    failure of the loop, not a request to stop it."""
    runs: list[int] = []

    async def loop() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise asyncio.CancelledError  # raised by code, nobody cancelled the task

    holder = SimpleNamespace(_tasks=[])
    ServiceRuntime.spawn(holder, loop, "stray")  # type: ignore[arg-type]
    (task,) = holder._tasks
    await asyncio.wait_for(task, timeout=10)

    assert len(runs) == 2


async def test_a_background_loop_that_is_cancelled_stops() -> None:
    started = asyncio.Event()

    async def loop() -> None:
        started.set()
        await asyncio.Event().wait()

    holder = SimpleNamespace(_tasks=[])
    ServiceRuntime.spawn(holder, loop, "forever")  # type: ignore[arg-type]
    (task,) = holder._tasks
    await asyncio.wait_for(started.wait(), timeout=10)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
