"""`ecommerce dev`, what `make run` runs: starts everything with the demo data loaded once, refuses a
second copy, stops cleanly, keeps its data across restarts, and with --reload restarts only what
changed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import uuid
from pathlib import Path

import httpx
import psutil

from ecommerce_cli.stack import DEFAULT_PORTS, free_port
from tests.helpers import eventually, unique_email

REGISTER = """
mutation Register($input: RegisterInput!) { register(input: $input) { account { email } } }"""
SHIPPING_TO_FRANCE = '{ shippingMethods(country: "FR") { code price { amount currency } } }'
READY_LINE = "Press Ctrl-C to stop."
ROOT = Path(__file__).resolve().parents[2]


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


async def start_dev(
    env: dict[str, str], *options: str, stderr: int = asyncio.subprocess.DEVNULL
) -> tuple[asyncio.subprocess.Process, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ecommerce_cli.main",
        "dev",
        *options,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
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


async def post(url: str, query: str, variables: dict | None = None) -> dict:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(url, json={"query": query, "variables": variables or {}})
    return response.json()


async def register(url: str, email: str) -> dict:
    return await post(
        url,
        REGISTER,
        {"input": {"name": "Dev", "email": email, "password": "correct horse battery"}},
    )


async def test_dev_runs_refuses_a_second_copy_stops_cleanly_and_keeps_its_data(tmp_path):
    env = dev_environment(tmp_path / "data")
    url = f"http://127.0.0.1:{env['GATEWAY_PORT']}/graphql"
    email = unique_email("dev")

    first, lines = await start_dev(env)
    try:
        assert url in "".join(lines)
        registered = await register(url, email)
        shipping = await post(url, SHIPPING_TO_FRANCE)
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
    assert "Loaded the demo shop: 2 shipping methods, 4 tax rates and 1 coupon.\n" in lines
    assert shipping["data"]["shippingMethods"] == [
        {"code": "STANDARD", "price": {"amount": "4.90", "currency": "USD"}},
        {"code": "EXPRESS", "price": {"amount": "14.90", "currency": "USD"}},
    ]
    assert second.returncode != 0
    assert b"already running" in second_err
    assert exit_code == 0

    again, lines_again = await start_dev(env)
    try:
        duplicate = await register(url, email)
        shipping_again = await post(url, SHIPPING_TO_FRANCE)
    finally:
        await stop_dev(again)
    assert duplicate["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert not [line for line in lines_again if line.startswith("Loaded the demo")]
    assert shipping_again["data"] == shipping["data"]


def service_pids(dev: asyncio.subprocess.Process) -> dict[str, int]:
    """The platform's processes (`python -m <name>`) by name."""
    found = {}
    for child in psutil.Process(dev.pid).children():
        command = child.cmdline()
        if "-m" in command:
            found[command[command.index("-m") + 1]] = child.pid
    return found


def serving_lines(lines: list[str]) -> list[str]:
    """The notification service's readable "serving" lines (the console format of `ecommerce dev`)."""
    serving = r"notification  \d\d:\d\d:\d\d\.\d{3} servicekit\.runtime: notification serving gRPC on \S+\n"
    return [line for line in lines if re.fullmatch(serving, line)]


async def test_dev_reload_restarts_only_the_process_whose_code_changed(tmp_path):
    env = dev_environment(tmp_path / "data")
    del env["LOG_FORMAT"]  # the default of `ecommerce dev`: readable lines prefixed with the process
    # A new module in the notification service's folder, removed afterwards: the checkout's own
    # files are never edited.
    probe = ROOT / "notification" / f"_reload_probe_{uuid.uuid4().hex}.py"
    dev, lines = await start_dev(env, "--reload", stderr=asyncio.subprocess.STDOUT)

    async def read_for(seconds: float) -> None:
        assert dev.stdout is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    lines.append((await dev.stdout.readline()).decode())

    try:
        assert "Reloading: a process restarts when its code changes.\n" in lines
        before = service_pids(dev)
        edits = 0

        async def restarting() -> bool:
            nonlocal edits
            edits += 1  # the watcher may not be watching yet: write until it sees a change
            probe.write_text(f'"""Written by a test of `ecommerce dev --reload` ({edits})."""\n')
            await read_for(0.5)
            return any(line.startswith("Code changed:") for line in lines)

        async def restarted() -> dict[str, int] | None:
            await read_for(0.5)
            after = service_pids(dev)
            done = "notification restarted.\n" in lines and len(serving_lines(lines)) >= 2
            return (
                after
                if done and after.get("notification", before["notification"]) != before["notification"]
                else None
            )

        await eventually(restarting, timeout=60, interval=0, what="the change seen")
        after = await eventually(restarted, timeout=90, interval=0, what="the notification service restarted")
    finally:
        probe.unlink(missing_ok=True)
        await stop_dev(dev)

    changed = [line for line in lines if line.startswith("Code changed:")]
    assert set(changed) == {"Code changed: restarting notification ...\n"}
    assert set(before) == set(after) == {"account", "catalog", "order", "payment", "notification", "gateway"}
    assert {n: p for n, p in after.items() if n != "notification"} == {
        n: p for n, p in before.items() if n != "notification"
    }
