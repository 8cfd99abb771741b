"""Fetching the account service's public keys while it restarts, as it does to rotate its key.

A service that meets a token signed by a key it does not know fetches the keys again. Just after
the account service came back, the fetching service's channel may still be backing off from the
outage: the fetch waits for the reconnect instead of failing the caller's request, and when the
keys cannot be had in time the caller hears UNAVAILABLE (try again), never INTERNAL.
"""

from __future__ import annotations

import asyncio
import socket

import grpc
import orjson
import pytest

from ecommerce.account.v1 import account_pb2, account_pb2_grpc
from servicekit.errors import Unavailable
from servicekit.grpc_server import create_server
from servicekit.runtime import account_jwks_fetcher, grpc_channel
from servicekit.security import SigningKey, jwks

KEYS = jwks([SigningKey.generate()])


class KeysOnly(account_pb2_grpc.AccountServiceServicer):
    """The account service's key endpoint and nothing else."""

    async def GetJwks(self, request, context):
        return account_pb2.GetJwksResponse(jwks_json=orjson.dumps(KEYS).decode())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def start_account(port: int) -> grpc.aio.Server:
    server, _ = create_server(
        [(account_pb2_grpc.add_AccountServiceServicer_to_server, KeysOnly())], [], authenticator=None
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server


async def test_a_fetch_during_the_reconnect_waits_for_the_service_to_come_back():
    port = free_port()
    channel = grpc_channel(f"127.0.0.1:{port}")
    fetch = account_jwks_fetcher(channel, timeout=10)
    with pytest.raises(Unavailable):  # the service is down: the channel starts backing off
        await account_jwks_fetcher(channel, timeout=0.5)()
    server = None
    try:
        fetching = asyncio.create_task(fetch())
        server = await start_account(port)

        assert await asyncio.wait_for(fetching, timeout=15) == KEYS
    finally:
        await channel.close()
        if server is not None:
            await server.stop(None)


async def test_keys_that_cannot_be_had_in_time_are_unavailable_not_an_internal_error():
    async with grpc_channel(f"127.0.0.1:{free_port()}") as channel:
        with pytest.raises(Unavailable) as refused:
            await account_jwks_fetcher(channel, timeout=0.3)()

    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert "try again" in refused.value.message
