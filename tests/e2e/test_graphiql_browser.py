"""GraphiQL in a real browser (headless Chromium through Playwright): the page, its scripts and its
subscriptions all come from the gateway itself, so the playground works without internet.

Chromium is the distribution's package: the fixture installs it with apt-get when it is missing
(as root, as on CI), so `make test-e2e` needs nothing set up beforehand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import pytest
from playwright.async_api import Browser, Page, Route, WebSocket, async_playwright

from tests.e2e.test_order_saga import customer, place, product
from tests.e2e.test_order_saga import shop as shop

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PRODUCTS = "{ products(first: 1) { edges { node { name } } } }"
STATUS = 'subscription { orderStatusChanged(orderId: "%s") { id status } }'
TIMEOUT_MS = 30_000


def ensure_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        pytest.fail("Chromium is missing and there is no apt-get to install it")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium"],
        check=True,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = ensure_chromium()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


class Traffic:
    """Every URL the page asks for, over HTTP or WebSocket; anything not the gateway is aborted."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.urls: list[str] = []
        self.frames: list[dict] = []
        self.binary_frames = 0

    def foreign(self) -> list[str]:
        return [url for url in self.urls if urlsplit(url).netloc != self.origin]

    async def route(self, route: Route) -> None:
        if urlsplit(route.request.url).netloc == self.origin:
            await route.continue_()
        else:
            await route.abort()

    def websocket(self, socket: WebSocket) -> None:
        self.urls.append(socket.url)
        socket.on("framereceived", self.frame)

    def frame(self, payload: str | bytes) -> None:
        # graphql-transport-ws messages are text frames; a browser's client cannot read binary ones.
        if isinstance(payload, bytes):
            self.binary_frames += 1
        self.frames.append(json.loads(payload))


async def open_graphiql(browser: Browser, url: str, **parameters: str) -> tuple[Page, Traffic]:
    traffic = Traffic(urlsplit(url).netloc)
    page = await browser.new_page()
    page.on("request", lambda request: traffic.urls.append(request.url))
    page.on("websocket", traffic.websocket)
    await page.route("**/*", traffic.route)
    # The page decodes its parameters with decodeURIComponent: spaces as %20, never "+".
    await page.goto(f"{url}?{urlencode(parameters, quote_via=quote)}")
    await page.locator(".graphiql-execute-button").wait_for(timeout=TIMEOUT_MS)
    return page, traffic


async def run_and_read(page: Page, expected: str) -> str:
    """Press the run button; the response pane's text once it shows `expected`."""
    await page.locator(".graphiql-execute-button").click()
    response = page.locator(".result-window")
    await response.get_by_text(expected).first.wait_for(timeout=TIMEOUT_MS)
    return await response.inner_text()


async def test_graphiql_runs_a_query_from_files_the_gateway_serves_itself(gateway, shop, browser):
    created = await product(gateway, shop)
    body = await gateway.post(PRODUCTS)
    assert "errors" not in body, body
    [first] = body["data"]["products"]["edges"]
    name = first["node"]["name"]

    page, traffic = await open_graphiql(browser, gateway.url, q=PRODUCTS)
    try:
        shown = await run_and_read(page, name)
    finally:
        await page.close()

    assert created
    assert '"products"' in shown
    assert traffic.foreign() == []
    local = {urlsplit(url).path for url in traffic.urls}
    assert "/graphiql/graphiql.min.js" in local
    assert "/graphiql/react.production.min.js" in local


async def test_graphiql_runs_a_subscription_over_the_gateways_websocket(gateway, shop, browser):
    token = await customer(gateway)
    order = await place(gateway, token, [(await product(gateway, shop), 1)])
    headers = json.dumps({"Authorization": f"Bearer {token}"})

    page, traffic = await open_graphiql(browser, gateway.url, q=STATUS % order["id"], headers=headers)
    try:
        shown = await run_and_read(page, order["id"])
    finally:
        await page.close()

    pushed = [
        frame["payload"]["data"]["orderStatusChanged"]
        for frame in traffic.frames
        if frame.get("type") == "next" and frame["payload"].get("data")
    ]
    assert pushed, traffic.frames
    assert traffic.binary_frames == 0
    assert {item["id"] for item in pushed} == {order["id"]}
    assert pushed[0]["status"] == "PENDING"
    assert '"orderStatusChanged"' in shown
    gateway_ws = f"ws://{urlsplit(gateway.url).netloc}/graphql"
    assert [url for url in traffic.urls if url.startswith("ws")] == [gateway_ws]
    assert traffic.foreign() == []
