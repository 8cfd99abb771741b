"""Calls the account service's tests share: registering, signing in, reading an RPC error."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
from google.protobuf.message import Message

from ecommerce.account.v1 import account_pb2
from ecommerce.events.v1 import envelope_pb2
from servicekit.kafka import unpack
from servicekit.topics import ACCOUNT_LINKS
from tests.helpers import (
    unique_email,
)

PASSWORD = "correct horse battery"


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def register(stub, email: str | None = None, name: str = "Ada Lovelace", password: str = PASSWORD):
    return await stub.Register(
        account_pb2.RegisterRequest(
            email=unique_email() if email is None else email, name=name, password=password
        )
    )


async def rpc_error(awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable
    return caught.value


async def counts(account) -> tuple[int, int]:
    [(accounts,)] = await account.execute("SELECT count(*) FROM accounts")
    [(events,)] = await account.execute("SELECT count(*) FROM outbox")
    return accounts, events


async def make_admin(account, email: str | None = None) -> account_pb2.LoginResponse:
    email = email or unique_email("admin")
    await account.app.service.create_or_promote_admin(email=email, name="Admin", password=PASSWORD)
    return await account.stub.Login(account_pb2.LoginRequest(email=email, password=PASSWORD))


async def staged_links(account, event_type: str, payload_type: type[Message]) -> list:
    """The payloads of the one-time-link events staged in the account service's outbox, oldest first."""
    rows = await account.execute(
        "SELECT topic, payload FROM outbox WHERE event_type = :t ORDER BY id", t=event_type
    )
    assert all(topic == ACCOUNT_LINKS for topic, _ in rows)
    return [unpack(envelope_pb2.EventEnvelope.FromString(raw), payload_type) for _, raw in rows]


def token_of(link: str) -> str:
    """The `token` parameter of an e-mailed link."""
    return parse_qs(urlsplit(link).query)["token"][0]
