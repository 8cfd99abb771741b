"""`ecommerce dev`, what `make run` runs: starts everything, refuses a second copy, stops cleanly,
and keeps its data across restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import psutil

from ecommerce_cli.stack import DEFAULT_PORTS, free_port
from tests.helpers import unique_email

REGISTER = """
mutation Register($input: RegisterInput!) { register(input: $input) { account { email } } }"""
READY_LINE = "Press Ctrl-C to stop."


def dev_environment(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }
    env.update({"ECOMMERCE_DATA_DIR": str(data_dir), "ACCOUNT_BCRYPT_ROUNDS": "4", "LOG_FORMAT": "json"})
    for name in DEFAULT_PORTS:
        env["GATEWAY_PORT" if name == "gateway" else f"{name.upper()}_GRPC_PORT"] = str(free_port())
        env[f"{name.upper()}_METRICS_PORT"] = str(free_port())
    return env


async def start_dev(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ecommerce_cli.main",
        "dev",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    lines: list[str] = []

    async def until_ready() -> None:
        assert process.stdout is not None
        while True:
            raw = await process.stdout.readline()
            if not raw:
                raise AssertionError("ecommerce dev exited before it was ready:\n" + "".join(lines))
            lines.append(raw.decode())
            if READY_LINE in lines[-1]:
                return

    await asyncio.wait_for(until_ready(), timeout=180)
    return process, lines


async def stop_dev(process: asyncio.subprocess.Process) -> int:
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGINT)
    assert process.stdout is not None
    await asyncio.wait_for(process.stdout.read(), timeout=60)
    code = await asyncio.wait_for(process.wait(), timeout=60)
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == [], f"left running: {[p.pid for p in alive]}"
    return code


async def register(url: str, email: str) -> dict:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            url,
            json={
                "query": REGISTER,
                "variables": {"input": {"name": "Dev", "email": email, "password": "correct horse battery"}},
            },
        )
    return response.json()


async def test_dev_runs_refuses_a_second_copy_stops_cleanly_and_keeps_its_data(tmp_path):
    env = dev_environment(tmp_path / "data")
    url = f"http://127.0.0.1:{env['GATEWAY_PORT']}/graphql"
    email = unique_email("dev")

    first, lines = await start_dev(env)
    try:
        assert url in "".join(lines)
        registered = await register(url, email)
        second = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ecommerce_cli.main",
            "dev",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, second_err = await asyncio.wait_for(second.communicate(), timeout=60)
    finally:
        exit_code = await stop_dev(first)

    assert registered["data"]["register"]["account"]["email"] == email
    assert second.returncode != 0
    assert b"already running" in second_err
    assert exit_code == 0

    again, _ = await start_dev(env)
    try:
        duplicate = await register(url, email)
    finally:
        await stop_dev(again)
    assert duplicate["errors"][0]["extensions"]["code"] == "CONFLICT"
