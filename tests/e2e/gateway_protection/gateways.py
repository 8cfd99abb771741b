"""The gateways the protection tests meet, and what those tests share.

Besides the session's gateway (test settings), the tests start gateways of their own against the
same services, each with the settings a test needs:

- `strict`: production mode, a 60-point bucket refilling at 20 points/s, depth limit 5, 127.0.0.30
  a trusted proxy;
- `lenient`: 200 aliases, cost up to 5,000, batching on, `extensions.rpcCalls` reported;
- `allowlist`: production mode executing registered documents only.

Anonymous callers are keyed by client address, so tests that meter anonymous callers connect
from addresses of their own on the loopback network (127.0.0.x).
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ecommerce_cli.stack import Platform, free_port
from tests.helpers import eventually

RATE_LIMIT = "query Budget { rateLimit { limit cost remaining resetAt } }"
TYPENAME = "query { __typename }"
LOGIN = "mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) { accessToken } }"
REGISTER = """
mutation Register($input: RegisterInput!) { register(input: $input) { account { id } } }"""


def sha256(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


@dataclass
class Endpoint:
    url: str
    process: subprocess.Popen[bytes] | None = None

    async def send(
        self,
        query: str | None,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        extensions: dict[str, Any] | None = None,
        address: str = "127.0.0.1",
        operation_name: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        payload: dict[str, Any] = {"variables": variables or {}}
        if query is not None:
            payload["query"] = query
        if extensions is not None:
            payload["extensions"] = extensions
        if operation_name is not None:
            payload["operationName"] = operation_name
        sent = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        async with client_at(address) as client:
            return await client.post(self.url, json=payload, headers=sent)

    async def post(self, query: str | None, variables: dict[str, Any] | None = None, **kwargs: Any) -> dict:
        """The decoded answer (the same call as the session's `gateway.post`)."""
        response = await self.send(query, variables, **kwargs)
        return response.json()


def client_at(address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address` (any 127.0.0.x reaches the gateway)."""
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=address), timeout=30)


def spawn_gateway(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def start_gateway(platform: Platform, log_dir: Path, name: str, settings: dict[str, str]) -> Endpoint:
    port = free_port()
    env = {
        **platform.environment(),
        "GATEWAY_PORT": str(port),
        "GATEWAY_METRICS_PORT": str(free_port()),
        "GATEWAY_RATE_LIMIT_CAPACITY": "1000",
        "GATEWAY_RATE_LIMIT_RESTORE_RATE": "50",
        **settings,
    }
    process = spawn_gateway(env, log_dir / f"gateway-{name}.log")
    endpoint = Endpoint(f"http://127.0.0.1:{port}/graphql", process)

    async def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the {name} gateway exited with code {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        return False

    await eventually(healthy, timeout=60, interval=0.1, what=f"the {name} gateway")
    return endpoint


PROXY = "127.0.0.30"
ALLOWED = "query Allowed { rateLimit { limit cost } }"


@dataclass
class Gateways:
    shared: Endpoint
    strict: Endpoint
    lenient: Endpoint
    allowlist: Endpoint


def cost_of(body: dict) -> dict:
    return body["extensions"]["cost"]


def only_code(body: dict) -> str:
    assert len(body.get("errors", [])) == 1, body
    return body["errors"][0]["extensions"]["code"]
