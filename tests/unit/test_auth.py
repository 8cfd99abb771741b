"""Token verification as services and the gateway use it: JWKS refetch on an unknown kid, rate
limited; keys that cannot be fetched are an outage, not a bad token."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from starlette.requests import Request

from account.__main__ import signing_keys
from account.settings import AccountSettings
from gateway.app import GatewayState, GraphQLApp
from gateway.errors import ApiError
from gateway.settings import GatewaySettings
from servicekit.auth import Authenticator, JwksKeySet, bearer_token
from servicekit.errors import Unauthenticated, Unavailable
from servicekit.security import SigningKey, TokenIssuer, TokenVerifier, jwks

ISSUER, AUDIENCE = "ecommerce-account", "ecommerce"


class KeySource:
    """The account service's JWKS as it changes over time (a rotation adds a key)."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0

    async def __call__(self) -> dict:
        self.fetches += 1
        return jwks(self.keys)


def issue(key: SigningKey, role: str = "CUSTOMER") -> str:
    return TokenIssuer(key, issuer=ISSUER, audience=AUDIENCE).issue(
        "8f7c3a52-7f3e-4d2c-9d0e-0a1b2c3d4e5f", role
    )[0]


def keyset(source: KeySource, interval: float) -> JwksKeySet:
    return JwksKeySet(TokenVerifier(issuer=ISSUER, audience=AUDIENCE), source, min_refresh_interval=interval)


def test_a_token_signed_with_a_rotated_in_key_is_accepted_after_one_refetch():
    old, new = SigningKey.generate(), SigningKey.generate()
    source = KeySource(old)
    keys = keyset(source, interval=0)

    async def scenario() -> tuple[str, str]:
        first = await keys.verify(issue(old))
        source.keys.append(new)
        second = await keys.verify(issue(new))
        return first.role, second.role

    assert asyncio.run(scenario()) == ("CUSTOMER", "CUSTOMER")
    assert source.fetches == 2


def test_forged_kids_cannot_make_the_verifier_refetch_more_than_once_per_interval():
    source = KeySource(SigningKey.generate())
    keys = keyset(source, interval=3600)
    stranger = SigningKey.generate()

    async def scenario() -> int:
        authenticator = Authenticator(keys)
        refused = 0
        for _ in range(20):
            try:
                await authenticator.authenticate(issue(stranger))
            except Unauthenticated:
                refused += 1
        return refused

    assert asyncio.run(scenario()) == 20
    assert source.fetches == 1


def test_a_key_rotated_in_within_the_refetch_interval_is_waited_for_not_refused():
    old, new = SigningKey.generate(), SigningKey.generate()
    source = KeySource(old)
    keys = JwksKeySet(
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE), source, min_refresh_interval=0.3, max_wait=1.0
    )

    async def scenario() -> list[str]:
        await keys.verify(issue(old))
        source.keys.append(new)
        # Several at once: they share the one refetch at the end of the interval.
        claims = await asyncio.gather(*(keys.verify(issue(new)) for _ in range(5)))
        return [c.role for c in claims]

    assert asyncio.run(scenario()) == ["CUSTOMER"] * 5
    assert source.fetches == 2


def test_the_revocation_list_fails_open_when_redis_cannot_be_reached(caplog: pytest.LogCaptureFixture):
    import redis.asyncio as aioredis

    from ecommerce_cli.stack import free_port
    from servicekit.auth import TokenDenylist

    async def scenario() -> bool:
        unreachable = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1.0)
        try:
            return await TokenDenylist(unreachable).revoked("jti", "account", datetime.now(UTC))
        finally:
            await unreachable.aclose()

    assert asyncio.run(scenario()) is False
    assert "token revocation list unavailable" in caplog.text


def test_the_authenticator_turns_a_token_into_a_caller():
    key = SigningKey.generate()
    authenticator = Authenticator(keyset(KeySource(key), interval=0))

    caller = asyncio.run(authenticator.authenticate(issue(key, role="ADMIN")))

    assert (caller.role, caller.is_admin, len(caller.token_id)) == ("ADMIN", True, 32)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_only_bearer_authorization_headers_carry_a_token(header, token):
    assert bearer_token(header) == token


def test_production_refuses_to_start_without_a_configured_signing_key(tmp_path):
    settings = AccountSettings(env="production", data_dir=tmp_path)

    with pytest.raises(SystemExit, match="required in production"):
        signing_keys(settings)


def test_development_creates_a_signing_key_once_and_reuses_it(tmp_path):
    settings = AccountSettings(env="development", data_dir=tmp_path)

    [first], [second] = signing_keys(settings), signing_keys(settings)

    assert first.kid == second.kid
    assert (tmp_path / "keys" / "jwt-signing.pem").stat().st_mode & 0o777 == 0o600


async def test_a_token_the_gateway_cannot_verify_for_want_of_keys_is_an_outage_not_a_bad_token():
    """The client keeps its token and tries again, instead of being signed out."""

    async def unreachable() -> dict:
        raise Unavailable("the keys that verify access tokens cannot be fetched now; try again shortly")

    settings = GatewaySettings()
    app = GraphQLApp(settings)
    app._state = GatewayState(settings)
    try:
        verifier = TokenVerifier(issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        app._state.authenticator = Authenticator(JwksKeySet(verifier, unreachable))
        token = TokenIssuer(SigningKey.generate(), issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        headers = [(b"authorization", f"Bearer {token.issue('8f7c3a52', 'CUSTOMER')[0]}".encode())]
        request = Request({"type": "http", "method": "POST", "path": "/graphql", "headers": headers})
        context = await app.get_context(request, None)  # type: ignore[arg-type]
        with pytest.raises(ApiError) as refused:
            context.require_caller()
    finally:
        await app._state.close()

    assert refused.value.extensions["code"] == "SERVICE_UNAVAILABLE"
