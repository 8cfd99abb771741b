"""The whole platform as a client sees it: every service and the gateway in their own processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecommerce_cli.stack import ALL_SERVICES, DEFAULT_PORTS, Platform, available_services, free_port, prepare


@dataclass
class Gateway:
    url: str
    platform: Platform
    client: httpx.AsyncClient

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Post one GraphQL document; returns the decoded body."""
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        response = await self.client.post(
            self.url, json={"query": query, "variables": variables or {}}, headers=all_headers
        )
        return response.json()

    def run_cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = self.platform.environment()
        return subprocess.run(
            [sys.executable, "-m", "ecommerce_cli.main", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="session")
async def platform(infra, data_dir: Path) -> AsyncIterator[Platform]:
    services = available_services()
    await prepare(infra, services)
    ports = {name: free_port() for name in DEFAULT_PORTS}
    metrics = {name: free_port() for name in DEFAULT_PORTS}
    stack = Platform(
        infra,
        services,
        ports=ports,
        metrics_ports=metrics,
        log_dir=data_dir / "logs",
        extra_env={
            "ACCOUNT_BCRYPT_ROUNDS": "4",
            "ECOMMERCE_ENV": os.environ.get("ECOMMERCE_ENV", "test"),
            **{f"{s.upper()}_OUTBOX_POLL_INTERVAL": "0.2" for s in ALL_SERVICES},
            # Every test calls from 127.0.0.1, one anonymous caller: the shared gateway's cost
            # budget is made ample; tests/e2e/gateway_protection/ meters its own gateways.
            "GATEWAY_RATE_LIMIT_CAPACITY": "1000000",
            "GATEWAY_RATE_LIMIT_RESTORE_RATE": "1000000",
            # The same for password-reset requests per client address (the fuzz tests send many).
            "ACCOUNT_PASSWORD_RESETS_PER_CLIENT": "1000000",
        },
    )
    try:
        await stack.start(timeout=90)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
async def gateway(platform: Platform) -> AsyncIterator[Gateway]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield Gateway(f"http://127.0.0.1:{platform.ports['gateway']}/graphql", platform, client)
