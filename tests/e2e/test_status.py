"""The gateway's /status and `ecommerce status`: every part checked by a round trip; 503 naming
the parts that fail."""

from __future__ import annotations

import asyncio

import httpx

from ecommerce_cli.stack import Platform
from tests.helpers import eventually

PARTS = [
    *(
        name
        for service in ("account", "catalog", "order", "payment", "notification")
        for name in (service, f"{service}.database")
    ),
    "redis",
    "broker",
]


def status_url(platform: Platform) -> str:
    return f"http://127.0.0.1:{platform.ports['gateway']}/status"


async def get_status(platform: Platform) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(status_url(platform))


async def test_with_everything_up_the_status_is_200_with_every_part_and_its_latency(gateway):
    async def all_up() -> httpx.Response | None:
        response = await get_status(gateway.platform)
        return response if response.status_code == 200 else None

    response = await eventually(all_up, timeout=30, interval=0.5, what="every part up")
    body = response.json()

    assert body["status"] == "ok"
    assert body["failing"] == []
    assert sorted(check["name"] for check in body["checks"]) == sorted(PARTS)
    assert all(check["ok"] and check["error"] is None for check in body["checks"])
    assert all(0 < check["latency_ms"] < 2000 for check in body["checks"])
    assert response.headers["cache-control"] == "no-store"

    shown = gateway.run_cli("status", "--url", status_url(gateway.platform).removesuffix("/status"))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().endswith("All up.")
    assert all(any(line.split()[:2] == [part, "up"] for line in shown.stdout.splitlines()) for part in PARTS)


async def test_concurrent_callers_share_one_round_of_checks_whatever_they_send(gateway):
    url = status_url(gateway.platform)
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.get(url, params={"refresh": str(i)}, headers={"Cache-Control": "no-cache"})
                for i in range(20)
            )
        )
        posted = await client.post(url, json={"refresh": True})

    assert len({response.json()["checked_at"] for response in responses}) <= 2
    assert posted.status_code == 405


async def test_a_stopped_service_makes_the_status_503_naming_it(gateway):
    platform = gateway.platform
    process = platform.processes.pop("notification")
    process.popen.terminate()
    try:
        await asyncio.to_thread(process.popen.wait, 30)

        async def failing() -> httpx.Response | None:
            response = await get_status(platform)
            return response if response.status_code == 503 else None

        response = await eventually(failing, timeout=30, interval=0.5, what="a 503 from /status")
        shown = gateway.run_cli("status", "--url", status_url(platform).removesuffix("/status"))
    finally:
        await platform.restart("notification")

    body = response.json()
    assert body["status"] == "failing"
    assert body["failing"] == ["notification", "notification.database"]
    failed = {check["name"]: check for check in body["checks"] if not check["ok"]}
    assert failed["notification"]["error"] in ("UNAVAILABLE", "no answer within 2 s")
    assert shown.returncode == 1
    assert "Failing: notification, notification.database" in shown.stdout
    assert any(line.split()[:2] == ["notification", "DOWN"] for line in shown.stdout.splitlines())
