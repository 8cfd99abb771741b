"""The token denylist read in the cost budget's Redis round trip, against the session's real Redis:
a revoked token (logged out, or issued before its account's cut-off) is refused as before, an
authenticated request makes one round trip where it made two, and an unreachable Redis still
accepts the token (fail open)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from starlette.requests import Request

from ecommerce_cli.stack import free_port
from gateway.app import GatewayState, GraphQLApp
from gateway.ratelimit import CostBucket
from gateway.settings import GatewaySettings
from servicekit.auth import Authenticator, JwksKeySet, TokenDenylist
from servicekit.security import SigningKey, TokenIssuer, TokenVerifier, jwks
from tests.helpers import eventually

# A restore rate so slow that no point comes back while a test runs: the counts are exact.
FROZEN = 1e-9


class Gateway:
    """The gateway's GraphQL app with its state on the session's Redis and its own signing key;
    the services are not running, so any resolver that called one would answer UNAVAILABLE."""

    def __init__(self, redis_url: str) -> None:
        self.settings = GatewaySettings(
            redis_url=redis_url, response_cache=False, rate_limit_restore_rate=FROZEN
        )
        self.app = GraphQLApp(self.settings)
        self.state = GatewayState(self.settings)
        self.app._state = self.state
        self.key = SigningKey.generate()
        verifier = TokenVerifier(issuer=self.settings.jwt_issuer, audience=self.settings.jwt_audience)

        async def keys() -> dict:
            return jwks([self.key])

        self.state.authenticator = Authenticator(JwksKeySet(verifier, keys), self.state.protection.denylist)
        self.round_trips = 0
        counted = self.state.redis.execute_command

        async def counting(*args: Any, **options: Any) -> Any:
            self.round_trips += 1
            return await counted(*args, **options)

        self.state.redis.execute_command = counting  # type: ignore[method-assign]

    def token(self, account_id: str) -> str:
        issuer = TokenIssuer(self.key, issuer=self.settings.jwt_issuer, audience=self.settings.jwt_audience)
        return issuer.issue(account_id, "CUSTOMER")[0]

    async def query(self, document: str, token: str | None = None) -> dict[str, Any]:
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        request = Request({"type": "http", "method": "POST", "path": "/graphql", "headers": headers})
        context = await self.app.get_context(request, None)  # type: ignore[arg-type]
        result = await self.app.schema.execute(document, context_value=context)
        if result.errors:
            return {"message": result.errors[0].message, **(result.errors[0].extensions or {})}
        return {"data": result.data}


@pytest.fixture
async def gateway(infra) -> AsyncIterator[Gateway]:
    gateway = Gateway(infra.redis_url)
    try:
        await gateway.query("{ rateLimit { remaining } }")  # loads the budget script into Redis
        yield gateway
    finally:
        await gateway.state.close()


async def remaining(gateway: Gateway, token: str | None = None) -> int:
    answer = await gateway.query("{ rateLimit { remaining } }", token)
    return answer["data"]["rateLimit"]["remaining"]


async def test_an_authenticated_request_checks_its_token_in_the_budgets_round_trip(gateway):
    token = gateway.token(str(uuid.uuid4()))
    gateway.round_trips = 0

    answer = await gateway.query("{ rateLimit { remaining cost } }", token)

    # Before: the denylist's MGET, then the budget's script. Now: the script alone.
    assert gateway.round_trips == 1
    assert answer["data"]["rateLimit"]["remaining"] == gateway.settings.rate_limit_capacity - 1


async def test_a_logged_out_token_is_refused_before_any_resolver_and_charges_the_address(gateway):
    token = gateway.token(str(uuid.uuid4()))
    verified = await gateway.state.authenticator.verify(token)
    await gateway.state.protection.denylist.add(
        verified.caller.token_id, datetime.now(UTC) + timedelta(minutes=15)
    )

    refused = await gateway.query("{ me { id } }", token)
    with_token = await remaining(gateway, token)
    without = await remaining(gateway)

    assert refused["code"] == "UNAUTHENTICATED"  # not UNAVAILABLE: the account service was not called
    assert refused["message"] == "access token has been revoked"
    assert with_token == without + 1  # one bucket, the client address's, for both


async def a_millisecond_after(moment: datetime) -> datetime:
    """Now, once the clock has moved at least a millisecond past `moment`."""

    async def moved_on() -> datetime | None:
        now = datetime.now(UTC)
        return now if now - moment >= timedelta(milliseconds=1) else None

    return await eventually(moved_on, timeout=1, what="the clock to move on")


async def test_a_token_issued_before_its_accounts_cutoff_is_refused_and_one_after_it_accepted(gateway):
    account_id = str(uuid.uuid4())
    before = gateway.token(account_id)
    # The cut-off is in milliseconds: it lies strictly after the first token and before the second.
    cutoff = await a_millisecond_after(datetime.now(UTC))
    await gateway.state.protection.denylist.revoke_issued_before(account_id, cutoff, ttl=60)
    await a_millisecond_after(cutoff)
    after = gateway.token(account_id)

    refused = await gateway.query("{ me { id } }", before)
    gateway.round_trips = 0
    accepted = await remaining(gateway, after)

    assert (refused["code"], refused["message"]) == ("UNAUTHENTICATED", "access token has been revoked")
    assert accepted == gateway.settings.rate_limit_capacity - 1  # the account's own, fresh bucket
    assert gateway.round_trips == 1


async def test_a_websocket_token_from_connection_init_is_checked_once(gateway):
    header = [(b"authorization", f"Bearer {gateway.token(str(uuid.uuid4()))}".encode())]
    gateway.round_trips = 0
    context = await gateway.app.get_context(
        Request({"type": "http", "method": "GET", "path": "/graphql", "headers": header}),
        None,
    )
    context.connection_params = {"Authorization": f"Bearer {gateway.token(str(uuid.uuid4()))}"}

    await gateway.app.on_ws_connect(context)
    answer = await gateway.app.schema.execute("{ rateLimit { remaining } }", context_value=context)

    assert context.caller is not None
    assert answer.errors is None
    # The denylist for connection_init's token (the upgrade's own is no longer the caller), then
    # the operation's budget; before, the upgrade's token was checked too.
    assert gateway.round_trips == 2


async def test_without_redis_the_token_is_accepted_and_every_operation_admitted(caplog):
    unreachable = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1.0)
    bucket = CostBucket(unreachable, capacity=100, restore_rate=FROZEN)
    denylist = TokenDenylist(unreachable)
    key = SigningKey.generate()
    verifier = TokenVerifier(issuer="issuer", audience="audience")

    async def keys() -> dict:
        return jwks([key])

    token = TokenIssuer(key, issuer="issuer", audience="audience").issue(str(uuid.uuid4()), "CUSTOMER")[0]
    check = (await Authenticator(JwksKeySet(verifier, keys)).verify(token)).check
    try:
        with caplog.at_level(logging.WARNING):
            first = await bucket.take_unless_revoked("account:x", check, denylist, 10)
            backing_off = await bucket.take_unless_revoked("account:x", check, denylist, 10)
    finally:
        await unreachable.aclose()

    assert first is not None
    assert (first.admitted, first.available) == (True, None)
    assert backing_off is not None
    assert backing_off.admitted
    assert caplog.text.count("token revocation list unavailable, accepting token") == 2
    assert "cost budgets unavailable" in caplog.text
