"""What a caller is told when a handler fails: a dependency that is down is UNAVAILABLE (try
again), anything else INTERNAL with nothing of the failure in the message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from servicekit.grpc_server import create_server


def _raising(error: BaseException):
    async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise error

    return grpc.unary_unary_rpc_method_handler(handler)


def _register(_servicer: object, server: grpc.aio.Server) -> None:
    handlers = {
        "DatabaseDown": _raising(ConnectionRefusedError(111, "Connection refused")),
        "DatabaseRestarting": _raising(asyncpg.CannotConnectNowError("the database system is starting up")),
        "Bug": _raising(KeyError("secret_column_name")),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Faulty", handlers),))


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server, _ = create_server([(_register, None)], ["test.Faulty"], authenticator=None)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(None)


async def call(channel: grpc.aio.Channel, method: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await channel.unary_unary(f"/test.Faulty/{method}")(b"", timeout=5)
    return raised.value


@pytest.mark.parametrize("method", ["DatabaseDown", "DatabaseRestarting"])
async def test_a_dependency_that_is_down_is_unavailable_not_internal(channel, method):
    error = await call(channel, method)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details() == "a dependency is unavailable; try again shortly"


async def test_a_bug_is_internal_and_its_details_stay_inside(channel):
    error = await call(channel, "Bug")
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "secret_column_name" not in (error.details() or "")
