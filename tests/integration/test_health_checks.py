"""The standard health service: the process's status for probes, a database round trip on
demand, and no access line for either."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text

from account import grpc_api
from ecommerce.account.v1 import account_pb2
from ecommerce_cli.stack import free_port
from servicekit.db import create_engine
from servicekit.grpc_server import DATABASE_CHECK, PROBE_TIMEOUT, create_server

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def check(port: int, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10
        )
    return response.status


async def serve_with_database(url: str) -> AsyncIterator[int]:
    engine = create_engine(url, pool_size=1)

    async def round_trip() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    server, _ = create_server([], [], authenticator=None, probes={DATABASE_CHECK: round_trip})
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)
        await engine.dispose()


async def test_the_database_check_is_serving_when_the_services_database_answers(account):
    assert await check(account.port, DATABASE_CHECK) == SERVING
    assert await check(account.port, "") == SERVING


async def test_an_unreachable_database_is_not_serving_while_the_process_stays_serving():
    async for port in serve_with_database(f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"):
        assert await check(port, DATABASE_CHECK) == NOT_SERVING
        assert await check(port, "") == SERVING


async def test_a_database_that_never_answers_is_not_serving_within_the_probe_timeout():
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # holds the connection open and says nothing

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    silent_port = listener.sockets[0].getsockname()[1]
    try:
        async for port in serve_with_database(f"postgresql://nobody@127.0.0.1:{silent_port}/nothing"):
            # A check that waited on the silent database for ever would end the test here.
            async with asyncio.timeout(PROBE_TIMEOUT * 10):
                status = await check(port, DATABASE_CHECK)
    finally:
        for writer in accepted:
            writer.close()
        listener.close()
    assert status == NOT_SERVING


async def test_health_checks_leave_no_access_line_while_other_rpcs_do(account, caplog):
    caplog.set_level(logging.INFO, logger="servicekit.grpc_server")
    for _ in range(3):
        await check(account.port, "")
        await check(account.port, grpc_api.SERVICE_NAME)
    await account.stub.GetJwks(account_pb2.GetJwksRequest(), timeout=10)

    methods = [getattr(r, "rpc_method", None) for r in caplog.records if r.getMessage() == "rpc"]
    assert methods == [f"/{grpc_api.SERVICE_NAME}/GetJwks"]
