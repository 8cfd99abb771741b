"""One service at a time, in-process on a free port, against the session's real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from account.__main__ import AccountApp, build
from account.settings import AccountSettings
from ecommerce.account.v1 import account_pb2_grpc
from tests.integration import harness


@dataclass
class AccountHarness:
    app: AccountApp
    stub: account_pb2_grpc.AccountServiceStub
    settings: AccountSettings
    port: int

    async def execute(self, sql: str, **params: object) -> list:
        return await harness.execute(self.app.runtime.sessions, sql, **params)


@pytest.fixture(scope="session")
async def account(infra, data_dir: Path) -> AsyncIterator[AccountHarness]:
    settings = AccountSettings(
        **await harness.service_settings(infra, data_dir, "account"),
        bcrypt_rounds=4,
        jwt_private_key_file=data_dir / "account-it-key.pem",
    )
    service = harness.InProcess(lambda: build(settings), account_pb2_grpc.AccountServiceStub)
    async with service.running():
        yield AccountHarness(service.app, service.stub, settings, service.port)


@pytest.fixture
async def clean_accounts(account: AccountHarness) -> AccountHarness:
    """Each test starts with no accounts, sessions or events."""
    await account.execute("TRUNCATE accounts, refresh_tokens, outbox, inbox CASCADE")
    await account.app.runtime.redis.flushdb()
    return account
