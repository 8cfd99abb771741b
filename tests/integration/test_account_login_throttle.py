"""Failed sign-ins are throttled per e-mail and client address, never locking the owner out, and fail closed."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
import redis.asyncio as aioredis

from account.service import LoginThrottle
from ecommerce.account.v1 import account_pb2
from ecommerce_cli.stack import free_port
from servicekit.errors import RateLimited, Unavailable
from servicekit.rpc_status import parse_rpc_error
from tests.helpers import (
    eventually,
    unique_email,
)
from tests.integration.account_calls import PASSWORD, register, rpc_error

pytestmark = pytest.mark.usefixtures("clean_accounts")


async def test_failed_logins_for_one_email_are_throttled_even_with_the_right_password(account):
    email = unique_email()
    other = unique_email()
    await register(account.stub, email=email)
    await register(account.stub, email=other)
    for _ in range(account.settings.login_max_failures):
        await rpc_error(account.stub.Login(account_pb2.LoginRequest(email=email, password="wrong password")))

    throttled = await rpc_error(account.stub.Login(account_pb2.LoginRequest(email=email, password=PASSWORD)))
    unaffected = await account.stub.Login(account_pb2.LoginRequest(email=other, password=PASSWORD))

    assert throttled.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert parse_rpc_error(throttled).retry_after >= 1
    assert unaffected.account.email == other


async def test_concurrent_failed_logins_cannot_slip_past_the_throttle_together(account):
    email = unique_email()
    await register(account.stub, email=email)

    results = await asyncio.gather(
        *(
            account.stub.Login(account_pb2.LoginRequest(email=email, password=f"wrong-{i}"))
            for i in range(20)
        ),
        return_exceptions=True,
    )

    codes = [r.code() for r in results]
    assert codes.count(grpc.StatusCode.UNAUTHENTICATED) == account.settings.login_max_failures
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 20 - account.settings.login_max_failures


def from_address(address: str) -> list[tuple[str, str]]:
    return [("x-client-address", address)]


async def test_failed_logins_from_one_address_do_not_throttle_the_same_email_from_another(account):
    email = unique_email()
    await register(account.stub, email=email)
    wrong = account_pb2.LoginRequest(email=email, password="wrong password")
    for _ in range(account.settings.login_max_failures):
        await rpc_error(account.stub.Login(wrong, metadata=from_address("198.51.100.1")))

    throttled = await rpc_error(account.stub.Login(wrong, metadata=from_address("198.51.100.1")))
    owner = await account.stub.Login(
        account_pb2.LoginRequest(email=email, password=PASSWORD), metadata=from_address("203.0.113.5")
    )

    assert throttled.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert owner.account.email == email


async def test_each_failure_past_the_free_ones_doubles_the_wait(account):
    throttle = LoginThrottle(account.app.runtime.redis, max_failures=2, window=60, delay=0.4)
    email = unique_email()
    for _ in range(2):
        await throttle.attempt(email, "198.51.100.1")

    with pytest.raises(RateLimited):
        await throttle.attempt(email, "198.51.100.1")
    started = time.monotonic()
    await eventually(lambda: admitted(throttle, email), timeout=5, interval=0.05, what="the first wait")
    first_wait = time.monotonic() - started
    with pytest.raises(RateLimited):
        await throttle.attempt(email, "198.51.100.1")
    started = time.monotonic()
    await eventually(lambda: admitted(throttle, email), timeout=5, interval=0.05, what="the second wait")
    second_wait = time.monotonic() - started

    assert 0.2 < first_wait < 0.7
    assert second_wait > 0.6  # 0.8 s from the failure before it
    await throttle.attempt(email, "203.0.113.5")  # another address never waited


async def admitted(throttle: LoginThrottle, email: str) -> bool:
    try:
        await throttle.attempt(email, "198.51.100.1")
    except RateLimited:
        return False
    return True


async def test_sign_in_fails_closed_when_the_throttle_cannot_count(account):
    unreachable = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    throttle = LoginThrottle(unreachable, max_failures=5, window=60)
    try:
        with pytest.raises(Unavailable):
            await throttle.attempt(unique_email(), "198.51.100.1")
    finally:
        await unreachable.aclose()
