"""The shop the fault suite runs: an administrator, a few scarce products, many shoppers, and a
steady load of orders placed through the gateway the way a careful client places them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.seed import Shopper, register_shoppers

log = logging.getLogger(__name__)

LOGIN = """
mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) { accessToken } }"""
CREATE_CATEGORY = "mutation C($name: String!) { createCategory(name: $name) { slug } }"
CREATE_PRODUCT = "mutation P($input: CreateProductInput!) { createProduct(input: $input) { id stock } }"
CREATE_ORDER = """
mutation Order($input: CreateOrderInput!, $key: String) { createOrder(input: $input, idempotencyKey: $key) { id } }"""
CANCEL_ORDER = "mutation Cancel($id: ID!) { cancelOrder(id: $id) { id status } }"
ADDRESS = {
    "name": "Chaos Monkey",
    "line1": "1 Fault Line",
    "city": "Lisbon",
    "postalCode": "1000-001",
    "country": "PT",
}

# Answers that mean "not now": the client waits and sends the same request again.
RETRYABLE = {"SERVICE_UNAVAILABLE", "DEADLINE_EXCEEDED", "RATE_LIMITED", "UNAVAILABLE", "TIMEOUT"}
# Answers a correct client never gets for these requests, whatever the fault.
INTERNAL = {"INTERNAL", "INTERNAL_SERVER_ERROR", "UNKNOWN"}


class GraphQLError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


async def post(
    client: httpx.AsyncClient, url: str, query: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    """One GraphQL request; the data, or GraphQLError with the first error's code."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(url, json={"query": query, "variables": variables}, headers=headers)
    if response.status_code >= 500:
        raise GraphQLError(f"HTTP_{response.status_code}", response.text[:200])
    body = response.json()
    if body.get("errors"):
        error = body["errors"][0]
        raise GraphQLError(
            str((error.get("extensions") or {}).get("code", "NO_CODE")), error.get("message", "")
        )
    return body["data"]


@dataclass
class Shop:
    url: str
    admin_token: str
    stock: dict[str, int]  # product id -> units at the start
    shoppers: list[Shopper]


async def open_shop(
    url: str, admin_email: str, admin_password: str, *, products: int, units: int, shoppers: int
) -> Shop:
    async with httpx.AsyncClient(timeout=60) as client:
        admin = (await post(client, url, LOGIN, {"email": admin_email, "password": admin_password}))["login"]
        token = admin["accessToken"]
        slug = (await post(client, url, CREATE_CATEGORY, {"name": f"Chaos {uuid.uuid4().hex[:6]}"}, token))[
            "createCategory"
        ]["slug"]
        stock: dict[str, int] = {}
        for i in range(products):
            product_input = {
                "sku": f"CHAOS-{uuid.uuid4().hex[:10]}",
                "name": f"Scarce thing {i}",
                "price": f"{10 + i}.50",
                "currency": "EUR",
                "categorySlug": slug,
                "stock": units,
            }
            created = (await post(client, url, CREATE_PRODUCT, {"input": product_input}, token))[
                "createProduct"
            ]
            stock[created["id"]] = created["stock"]
    return Shop(url, token, stock, await register_shoppers(url, shoppers))


@dataclass
class Placed:
    order_id: str
    shopper: int
    fault: str
    cancel: bool


@dataclass
class OrderLoad:
    """Places orders at `rate` per second until stopped. Each order has its own idempotency key,
    and a request that fails for want of the platform (no connection, a timeout, UNAVAILABLE) is
    sent again with the same key until it is answered or `give_up` seconds have passed: what a
    careful client does, and what makes "accepted" mean something while processes die."""

    shop: Shop
    rate: float
    seed: int = 7
    give_up: float = 90.0
    decline_share: float = 0.1
    cancel_share: float = 0.05
    fault: str = ""
    accepted: list[Placed] = field(default_factory=list)
    attempted: int = 0
    abandoned: int = 0  # never answered within give_up: not accepted, but checked like the rest
    codes: Counter[str] = field(default_factory=Counter)
    internal: list[str] = field(default_factory=list)
    retries: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._tokens: dict[int, str] = {i: s.access_token for i, s in enumerate(self.shop.shoppers)}
        self._running: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        # No cap on connections: the load's rate already bounds them, and a request that waits for
        # a pooled connection and times out can leave httpcore's pool stuck for good (seen at 30
        # orders a second while the gateway restarted: no request left the chaos process again).
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        self._driver: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stop.clear()
        self._driver = asyncio.create_task(self._drive())

    async def wait_attempted(self, count: int, *, timeout: float = 120.0) -> None:
        """Return once `count` more orders have been attempted: a fault lasts a number of orders."""
        target = self.attempted + count
        deadline = time.monotonic() + timeout
        while self.attempted < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the load attempted {self.attempted}, not {target}, in {timeout:.0f}s")
            await asyncio.sleep(1 / self.rate)

    async def stop(self) -> None:
        """Stop placing new orders; wait for those in flight to be answered or abandoned."""
        self._stop.set()
        if self._driver is not None:
            await self._driver
            self._driver = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def close(self) -> None:
        await self._client.aclose()

    async def _drive(self) -> None:
        interval = 1 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            task = asyncio.create_task(self._order())
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            self.attempted += 1
            next_at += interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(0.0, next_at - time.monotonic()))

    def _lines(self) -> list[dict[str, Any]]:
        products = self._rng.sample(sorted(self.shop.stock), k=self._rng.choice((1, 1, 2, 3)))
        return [{"productId": p, "quantity": self._rng.choice((1, 1, 2))} for p in products]

    async def _order(self) -> None:
        shopper = self._rng.randrange(len(self.shop.shoppers))
        token = "tok_chargeDeclined" if self._rng.random() < self.decline_share else "tok_visa"
        variables = {
            "input": {"items": self._lines(), "paymentToken": token, "shippingAddress": ADDRESS},
            "key": f"chaos-{uuid.uuid4().hex}",
        }
        cancel = self._rng.random() < self.cancel_share
        fault = self.fault
        data = await self._until_answered(CREATE_ORDER, variables, shopper)
        if data is None:
            self.abandoned += 1
            return
        placed = Placed(data["createOrder"]["id"], shopper, fault, cancel)
        self.accepted.append(placed)
        if cancel:
            # The shopper changes their mind: before payment it stops the saga, after it refunds.
            await self._until_answered(
                CANCEL_ORDER, {"id": placed.order_id}, shopper, expected={"FAILED_PRECONDITION"}
            )

    async def _until_answered(
        self, query: str, variables: dict[str, Any], shopper: int, *, expected: set[str] = frozenset()
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + self.give_up
        delay = 0.2
        while True:
            try:
                data = await post(self._client, self.shop.url, query, variables, self._tokens[shopper])
                self.codes["OK"] += 1
                return data
            except GraphQLError as exc:
                self.codes[exc.code] += 1
                if exc.code in INTERNAL or exc.code.startswith("HTTP_5"):
                    self.internal.append(str(exc))
                elif exc.code == "UNAUTHENTICATED":
                    await self._login(shopper)
                elif exc.code in expected:
                    return None
                elif exc.code not in RETRYABLE:
                    log.warning("order request refused: %s", exc)
                    return None
            except (httpx.HTTPError, ValueError) as exc:
                self.codes[type(exc).__name__] += 1
            if time.monotonic() + delay > deadline:
                return None
            self.retries += 1
            await asyncio.sleep(delay * (0.5 + self._rng.random()))
            delay = min(delay * 2, 2.0)

    async def _login(self, index: int) -> None:
        shopper = self.shop.shoppers[index]
        with contextlib.suppress(GraphQLError, httpx.HTTPError, ValueError):
            data = await post(
                self._client, self.shop.url, LOGIN, {"email": shopper.email, "password": shopper.password}
            )
            self._tokens[index] = data["login"]["accessToken"]
