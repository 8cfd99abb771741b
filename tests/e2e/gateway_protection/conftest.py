"""The gateways of the protection tests (see gateways.py), started once for all of them, and an admin."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ecommerce_cli.stack import Platform
from tests.e2e.gateway_protection.gateways import ALLOWED, PROXY, TYPENAME, Endpoint, Gateways, start_gateway
from tests.e2e.test_account_graphql import admin_session


@pytest.fixture(scope="package")
async def gateways(gateway, platform: Platform, data_dir: Path) -> AsyncIterator[Gateways]:
    allowlist_file = data_dir / "allowlist.json"
    allowlist_file.write_text(json.dumps([ALLOWED, TYPENAME]))
    logs = data_dir / "logs"
    strict, lenient, allowlist = await asyncio.gather(
        start_gateway(
            platform,
            logs,
            "strict",
            {
                "ECOMMERCE_ENV": "production",
                "GATEWAY_RATE_LIMIT_CAPACITY": "60",
                "GATEWAY_RATE_LIMIT_RESTORE_RATE": "20",
                "GATEWAY_MAX_DEPTH": "5",
                "GATEWAY_TRUSTED_PROXIES": PROXY,
            },
        ),
        start_gateway(
            platform,
            logs,
            "lenient",
            {
                "GATEWAY_MAX_ALIASES": "200",
                "GATEWAY_MAX_QUERY_COST": "5000",
                "GATEWAY_RATE_LIMIT_CAPACITY": "5000",
                "GATEWAY_RATE_LIMIT_RESTORE_RATE": "1000000",
                "GATEWAY_BATCHING": "true",
                "GATEWAY_REPORT_RPC_CALLS": "true",
            },
        ),
        start_gateway(
            platform,
            logs,
            "allowlist",
            {
                "ECOMMERCE_ENV": "production",
                "GATEWAY_PERSISTED_QUERIES_ONLY": "true",
                "GATEWAY_PERSISTED_QUERIES_FILE": str(allowlist_file),
            },
        ),
    )
    try:
        yield Gateways(Endpoint(gateway.url), strict, lenient, allowlist)
    finally:
        for endpoint in (strict, lenient, allowlist):
            assert endpoint.process is not None
            endpoint.process.terminate()
        for endpoint in (strict, lenient, allowlist):
            assert endpoint.process is not None
            try:
                endpoint.process.wait(10)
            except subprocess.TimeoutExpired:
                endpoint.process.kill()
                endpoint.process.wait()


@pytest.fixture(scope="package")
async def admin(gateway) -> str:
    return (await admin_session(gateway))["accessToken"]
