"""One service at a time, in-process on a free port, against the session's real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text

from account import grpc_api
from account.__main__ import AccountApp, build
from account.settings import AccountSettings
from ecommerce.account.v1 import account_pb2_grpc
from servicekit.db import database_url, ensure_database
from servicekit.migrations import upgrade_async
from servicekit.runtime import shutdown, start


@dataclass
class AccountHarness:
    app: AccountApp
    stub: account_pb2_grpc.AccountServiceStub
    settings: AccountSettings
    port: int

    async def execute(self, sql: str, **params: object) -> list:
        async with self.app.runtime.sessions() as session, session.begin():
            result = await session.execute(text(sql), params)
            return list(result.all()) if result.returns_rows else []


@pytest.fixture(scope="session")
async def account(infra, data_dir: Path) -> AsyncIterator[AccountHarness]:
    url = database_url(infra.postgres_url, "account_it")
    await ensure_database(url)
    await upgrade_async("account", url)
    settings = AccountSettings(
        database_url=url,
        redis_url=infra.redis_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        grpc_port=0,
        bcrypt_rounds=4,
        data_dir=data_dir,
        jwt_private_key_file=data_dir / "account-it-key.pem",
        outbox_poll_interval=0.2,
    )
    app = build(settings)
    server, health, port = await start(
        app.runtime,
        [grpc_api.registration(app.servicer)],
        [grpc_api.SERVICE_NAME],
        authenticator=app.authenticator,
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield AccountHarness(app, account_pb2_grpc.AccountServiceStub(channel), settings, port)
    finally:
        await channel.close()
        await shutdown(app.runtime, server, health, [grpc_api.SERVICE_NAME])


@pytest.fixture
async def clean_accounts(account: AccountHarness) -> AccountHarness:
    """Each test starts with no accounts, sessions or events."""
    await account.execute("TRUNCATE accounts, refresh_tokens, outbox, inbox CASCADE")
    await account.app.runtime.redis.flushdb()
    return account
