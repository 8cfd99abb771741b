"""The account service over gRPC against real PostgreSQL, Redis and broker."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import jwt
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from account.service import LoginThrottle
from ecommerce.account.v1 import account_pb2
from ecommerce.events.v1 import account_events_pb2, envelope_pb2
from ecommerce_cli.stack import free_port
from servicekit.errors import RateLimited, Unavailable
from servicekit.rpc_status import parse_rpc_error
from servicekit.security import SigningKey
from tests.helpers import (
    alg_none_token,
    claims,
    eventually,
    group_timeouts,
    hs256_with_public_key,
    signed,
    unique_email,
)

PASSWORD = "correct horse battery"

pytestmark = pytest.mark.usefixtures("clean_accounts")


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def register(stub, email: str | None = None, name: str = "Ada Lovelace", password: str = PASSWORD):
    return await stub.Register(
        account_pb2.RegisterRequest(
            email=unique_email() if email is None else email, name=name, password=password
        )
    )


async def rpc_error(awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable
    return caught.value


async def counts(account) -> tuple[int, int]:
    [(accounts,)] = await account.execute("SELECT count(*) FROM accounts")
    [(events,)] = await account.execute("SELECT count(*) FROM outbox")
    return accounts, events


async def make_admin(account, email: str | None = None) -> account_pb2.LoginResponse:
    email = email or unique_email("admin")
    await account.app.service.create_or_promote_admin(email=email, name="Admin", password=PASSWORD)
    return await account.stub.Login(account_pb2.LoginRequest(email=email, password=PASSWORD))


# -- registration -------------------------------------------------------------------------


async def test_register_writes_the_account_and_its_event_in_one_transaction_and_publishes_it(account):
    consumer = AIOKafkaConsumer(
        "account.events",
        bootstrap_servers=account.settings.kafka_bootstrap_servers,
        group_id=f"test-{uuid.uuid4().hex}",
        auto_offset_reset="latest",
        **group_timeouts(),
    )
    await consumer.start()
    try:
        await eventually(lambda: _assigned(consumer), what="partition assignment")
        response = await register(account.stub, email="Ada@Example.COM")
        account_id = response.account.id

        assert response.account.email == "ada@example.com"
        assert response.account.role == account_pb2.ROLE_CUSTOMER
        rows = await account.execute("SELECT event_type, key FROM outbox WHERE key = :id", id=account_id)
        assert rows == [("account.registered", account_id)]

        async def published() -> envelope_pb2.EventEnvelope | None:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    envelope = envelope_pb2.EventEnvelope.FromString(record.value)
                    if envelope.aggregate_id == account_id:
                        return envelope
            return None

        envelope = await eventually(published, timeout=15, what="account.registered on the broker")
        payload = account_events_pb2.AccountRegistered()
        assert envelope.payload.Unpack(payload)
        assert (envelope.event_type, payload.email, payload.name) == (
            "account.registered",
            "ada@example.com",
            "Ada Lovelace",
        )
        await eventually(lambda: _published_marked(account, account_id), what="outbox row marked published")
    finally:
        await consumer.stop()


async def _assigned(consumer: AIOKafkaConsumer) -> bool:
    await consumer.getmany(timeout_ms=100)
    return bool(consumer.assignment())


async def _published_marked(account, account_id: str) -> bool:
    rows = await account.execute("SELECT published_at FROM outbox WHERE key = :id", id=account_id)
    return bool(rows) and rows[0][0] is not None


@pytest.mark.parametrize(
    ("email", "name", "password", "field"),
    [
        ("not-an-email", "Ada", PASSWORD, "email"),
        ("", "Ada", PASSWORD, "email"),
        ("a" * 250 + "@example.com", "Ada", PASSWORD, "email"),
        ("ada@example.com", "", PASSWORD, "name"),
        ("ada@example.com", "   ", PASSWORD, "name"),
        ("ada@example.com", "x" * 101, PASSWORD, "name"),
        ("ada@example.com", "x" * 1_000_000, PASSWORD, "name"),
        ("ada@example.com", "Ada\x00Lovelace", PASSWORD, "name"),
        ("ada@example.com", "Ada\u202eecalevoL", PASSWORD, "name"),
        ("ada@example.com", "Ada", "short7!", "password"),
        ("ada@example.com", "Ada", "x" * 73, "password"),
        ("ada@example.com", "Ada", "é" * 37, "password"),
        ("ada@example.com", "Ada", "pass\x00word-long", "password"),
        ("<script>@example.com", "Ada", PASSWORD, "email"),
        ("ada@example.com' OR '1'='1", "Ada", PASSWORD, "email"),
    ],
)
async def test_register_refuses_bad_input_naming_the_field_and_writes_nothing(
    account, email, name, password, field
):
    error = await rpc_error(register(account.stub, email=email, name=name, password=password))

    details = parse_rpc_error(error)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in details.violations]
    assert await counts(account) == (0, 0)


async def test_a_taken_email_in_any_case_is_already_exists_and_writes_nothing(account):
    await register(account.stub, email="grace@example.com")

    error = await rpc_error(register(account.stub, email="GRACE@example.com"))

    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert parse_rpc_error(error).metadata == {"field": "email"}
    assert await counts(account) == (1, 1)


async def test_concurrent_registrations_with_one_email_create_one_account(account):
    email = unique_email()
    results = await asyncio.gather(
        *(register(account.stub, email=email) for _ in range(5)), return_exceptions=True
    )

    winners = [r for r in results if isinstance(r, account_pb2.RegisterResponse)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert {e.code() for e in losers} == {grpc.StatusCode.ALREADY_EXISTS}
    assert await counts(account) == (1, 1)


# -- login and throttling -------------------------------------------------------------------


async def test_login_returns_tokens_that_the_service_accepts(account):
    email = unique_email()
    await register(account.stub, email=email)

    response = await account.stub.Login(account_pb2.LoginRequest(email=email.upper(), password=PASSWORD))
    me = await account.stub.GetMe(account_pb2.GetMeRequest(), metadata=bearer(response.tokens.access_token))

    assert me.account.email == email
    assert response.tokens.expires_in == 900
    assert response.tokens.token_type == "Bearer"


async def test_unknown_email_and_wrong_password_give_the_same_error(account):
    email = unique_email()
    await register(account.stub, email=email)

    unknown = await rpc_error(
        account.stub.Login(account_pb2.LoginRequest(email=unique_email(), password=PASSWORD))
    )
    wrong = await rpc_error(
        account.stub.Login(account_pb2.LoginRequest(email=email, password="wrong password"))
    )

    assert unknown.code() == wrong.code() == grpc.StatusCode.UNAUTHENTICATED
    assert unknown.details() == wrong.details()


async def test_failed_logins_for_one_email_are_throttled_even_with_the_right_password(account):
    email = unique_email()
    other = unique_email()
    await register(account.stub, email=email)
    await register(account.stub, email=other)
    for _ in range(account.settings.login_max_failures):
        await rpc_error(account.stub.Login(account_pb2.LoginRequest(email=email, password="wrong password")))

    throttled = await rpc_error(account.stub.Login(account_pb2.LoginRequest(email=email, password=PASSWORD)))
    unaffected = await account.stub.Login(account_pb2.LoginRequest(email=other, password=PASSWORD))

    assert throttled.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert parse_rpc_error(throttled).retry_after >= 1
    assert unaffected.account.email == other


async def test_concurrent_failed_logins_cannot_slip_past_the_throttle_together(account):
    email = unique_email()
    await register(account.stub, email=email)

    results = await asyncio.gather(
        *(
            account.stub.Login(account_pb2.LoginRequest(email=email, password=f"wrong-{i}"))
            for i in range(20)
        ),
        return_exceptions=True,
    )

    codes = [r.code() for r in results]
    assert codes.count(grpc.StatusCode.UNAUTHENTICATED) == account.settings.login_max_failures
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 20 - account.settings.login_max_failures


def from_address(address: str) -> list[tuple[str, str]]:
    return [("x-client-address", address)]


async def test_failed_logins_from_one_address_do_not_throttle_the_same_email_from_another(account):
    email = unique_email()
    await register(account.stub, email=email)
    wrong = account_pb2.LoginRequest(email=email, password="wrong password")
    for _ in range(account.settings.login_max_failures):
        await rpc_error(account.stub.Login(wrong, metadata=from_address("198.51.100.1")))

    throttled = await rpc_error(account.stub.Login(wrong, metadata=from_address("198.51.100.1")))
    owner = await account.stub.Login(
        account_pb2.LoginRequest(email=email, password=PASSWORD), metadata=from_address("203.0.113.5")
    )

    assert throttled.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert owner.account.email == email


async def test_each_failure_past_the_free_ones_doubles_the_wait(account):
    throttle = LoginThrottle(account.app.runtime.redis, max_failures=2, window=60, delay=0.4)
    email = unique_email()
    for _ in range(2):
        await throttle.attempt(email, "198.51.100.1")

    with pytest.raises(RateLimited):
        await throttle.attempt(email, "198.51.100.1")
    started = time.monotonic()
    await eventually(lambda: admitted(throttle, email), timeout=5, interval=0.05, what="the first wait")
    first_wait = time.monotonic() - started
    with pytest.raises(RateLimited):
        await throttle.attempt(email, "198.51.100.1")
    started = time.monotonic()
    await eventually(lambda: admitted(throttle, email), timeout=5, interval=0.05, what="the second wait")
    second_wait = time.monotonic() - started

    assert 0.2 < first_wait < 0.7
    assert second_wait > 0.6  # 0.8 s from the failure before it
    await throttle.attempt(email, "203.0.113.5")  # another address never waited


async def admitted(throttle: LoginThrottle, email: str) -> bool:
    try:
        await throttle.attempt(email, "198.51.100.1")
    except RateLimited:
        return False
    return True


async def test_sign_in_fails_closed_when_the_throttle_cannot_count(account):
    unreachable = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    throttle = LoginThrottle(unreachable, max_failures=5, window=60)
    try:
        with pytest.raises(Unavailable):
            await throttle.attempt(unique_email(), "198.51.100.1")
    finally:
        await unreachable.aclose()


# -- refresh tokens ---------------------------------------------------------------------------


async def test_refresh_rotates_the_token(account):
    first = (await register(account.stub)).tokens

    second = await account.stub.RefreshToken(
        account_pb2.RefreshTokenRequest(refresh_token=first.refresh_token)
    )

    assert second.tokens.refresh_token != first.refresh_token
    await account.stub.GetMe(account_pb2.GetMeRequest(), metadata=bearer(second.tokens.access_token))


async def test_second_refresh_with_a_rotated_token_revokes_the_family(account):
    first = (await register(account.stub)).tokens
    second = await account.stub.RefreshToken(
        account_pb2.RefreshTokenRequest(refresh_token=first.refresh_token)
    )

    reuse = await rpc_error(
        account.stub.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=first.refresh_token))
    )
    after = await rpc_error(
        account.stub.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=second.tokens.refresh_token))
    )

    assert reuse.code() == after.code() == grpc.StatusCode.UNAUTHENTICATED
    assert parse_rpc_error(reuse).reason == "REFRESH_TOKEN_REUSED"


async def test_concurrent_refreshes_of_one_token_let_at_most_one_win(account):
    token = (await register(account.stub)).tokens.refresh_token

    results = await asyncio.gather(
        *(account.stub.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=token)) for _ in range(8)),
        return_exceptions=True,
    )

    winners = [r for r in results if isinstance(r, account_pb2.RefreshTokenResponse)]
    assert len(winners) <= 1
    assert all(
        r.code() == grpc.StatusCode.UNAUTHENTICATED for r in results if isinstance(r, grpc.aio.AioRpcError)
    )
    [(live,)] = await account.execute(
        "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL AND rotated_at IS NULL"
    )
    assert live <= 1


@pytest.mark.parametrize("token", ["", "x" * 257, "not-a-token", "' OR 1=1 --"])
async def test_refresh_with_a_bad_token_is_refused(account, token):
    error = await rpc_error(account.stub.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=token)))

    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED)


# -- logout, profile, password ---------------------------------------------------------------


async def test_logout_revokes_the_refresh_family_and_denylists_the_access_token(account):
    tokens = (await register(account.stub)).tokens
    rotated = (
        await account.stub.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=tokens.refresh_token))
    ).tokens

    await account.stub.Logout(
        account_pb2.LogoutRequest(refresh_token=rotated.refresh_token), metadata=bearer(rotated.access_token)
    )

    me = await rpc_error(
        account.stub.GetMe(account_pb2.GetMeRequest(), metadata=bearer(rotated.access_token))
    )
    refresh = await rpc_error(
        account.stub.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=rotated.refresh_token))
    )
    assert me.code() == refresh.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in me.details()


async def test_logout_with_another_accounts_refresh_token_is_forbidden_and_revokes_nothing(account):
    mine = (await register(account.stub)).tokens
    theirs = (await register(account.stub)).tokens

    error = await rpc_error(
        account.stub.Logout(
            account_pb2.LogoutRequest(refresh_token=theirs.refresh_token), metadata=bearer(mine.access_token)
        )
    )

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    await account.stub.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=theirs.refresh_token))


async def test_profile_calls_need_a_token(account):
    for call in (
        account.stub.GetMe(account_pb2.GetMeRequest()),
        account.stub.UpdateProfile(account_pb2.UpdateProfileRequest(name="Eve")),
        account.stub.ChangePassword(
            account_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password="x" * 10)
        ),
    ):
        assert (await rpc_error(call)).code() == grpc.StatusCode.UNAUTHENTICATED


async def test_update_profile_changes_the_name_and_refuses_a_bad_one(account):
    tokens = (await register(account.stub)).tokens

    updated = await account.stub.UpdateProfile(
        account_pb2.UpdateProfileRequest(name="  Ada King  "), metadata=bearer(tokens.access_token)
    )
    error = await rpc_error(
        account.stub.UpdateProfile(
            account_pb2.UpdateProfileRequest(name="x" * 101), metadata=bearer(tokens.access_token)
        )
    )

    assert updated.account.name == "Ada King"
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(name,)] = await account.execute("SELECT name FROM accounts")
    assert name == "Ada King"


async def test_change_password_checks_the_current_one_and_ends_other_sessions(account):
    email = unique_email()
    tokens = (await register(account.stub, email=email)).tokens
    new_password = "a much better passphrase"

    wrong = await rpc_error(
        account.stub.ChangePassword(
            account_pb2.ChangePasswordRequest(current_password="not it at all", new_password=new_password),
            metadata=bearer(tokens.access_token),
        )
    )
    await account.stub.ChangePassword(
        account_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password=new_password),
        metadata=bearer(tokens.access_token),
    )

    assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert parse_rpc_error(wrong).violations[0].field == "current_password"
    old_session = await rpc_error(
        account.stub.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=tokens.refresh_token))
    )
    assert old_session.code() == grpc.StatusCode.UNAUTHENTICATED
    old_password = await rpc_error(
        account.stub.Login(account_pb2.LoginRequest(email=email, password=PASSWORD))
    )
    assert old_password.code() == grpc.StatusCode.UNAUTHENTICATED
    await account.stub.Login(account_pb2.LoginRequest(email=email, password=new_password))


async def get_me_code(stub, token: str) -> grpc.StatusCode:
    try:
        await stub.GetMe(account_pb2.GetMeRequest(), metadata=bearer(token))
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_change_password_refuses_every_access_token_issued_before_it(account):
    email = unique_email()
    first = (await register(account.stub, email=email)).tokens
    second = (await account.stub.Login(account_pb2.LoginRequest(email=email, password=PASSWORD))).tokens
    new_password = "a much better passphrase"

    await account.stub.ChangePassword(
        account_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password=new_password),
        metadata=bearer(first.access_token),
    )
    # Issued within the same second as the change, but after it.
    fresh = (await account.stub.Login(account_pb2.LoginRequest(email=email, password=new_password))).tokens

    assert await get_me_code(account.stub, first.access_token) == grpc.StatusCode.UNAUTHENTICATED
    assert await get_me_code(account.stub, second.access_token) == grpc.StatusCode.UNAUTHENTICATED
    assert await get_me_code(account.stub, fresh.access_token) == grpc.StatusCode.OK
    for old in (first, second):
        refused = await rpc_error(
            account.stub.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=old.refresh_token))
        )
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    [(cutoff,)] = await account.execute(
        "SELECT tokens_valid_after FROM accounts WHERE email = :email", email=email
    )
    assert cutoff is not None


async def test_a_failed_password_change_refuses_no_token(account):
    tokens = (await register(account.stub)).tokens

    await rpc_error(
        account.stub.ChangePassword(
            account_pb2.ChangePasswordRequest(current_password="not it at all", new_password="whatever1234"),
            metadata=bearer(tokens.access_token),
        )
    )

    assert await get_me_code(account.stub, tokens.access_token) == grpc.StatusCode.OK


async def test_the_cutoff_survives_redis_losing_it(account):
    email = unique_email()
    tokens = (await register(account.stub, email=email)).tokens
    await account.stub.ChangePassword(
        account_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password="a much better passphrase"),
        metadata=bearer(tokens.access_token),
    )
    await account.app.runtime.redis.flushdb()

    restored = await account.app.service.restore_cutoffs()

    assert restored == 1
    assert await get_me_code(account.stub, tokens.access_token) == grpc.StatusCode.UNAUTHENTICATED


# -- administration -------------------------------------------------------------------------


async def test_a_customer_may_not_list_accounts_or_set_roles(account):
    customer = await register(account.stub)
    metadata = bearer(customer.tokens.access_token)

    listing = await rpc_error(
        account.stub.ListAccounts(account_pb2.ListAccountsRequest(page_size=10), metadata=metadata)
    )
    promote = await rpc_error(
        account.stub.SetRole(
            account_pb2.SetRoleRequest(account_id=customer.account.id, role=account_pb2.ROLE_ADMIN),
            metadata=metadata,
        )
    )

    assert listing.code() == promote.code() == grpc.StatusCode.PERMISSION_DENIED
    [(role,)] = await account.execute("SELECT role FROM accounts")
    assert role == "CUSTOMER"


async def test_an_admin_pages_through_every_account_and_sets_roles(account):
    admin = await make_admin(account)
    customers = [await register(account.stub) for _ in range(4)]
    metadata = bearer(admin.tokens.access_token)

    seen: list[str] = []
    token = ""
    while True:
        page = await account.stub.ListAccounts(
            account_pb2.ListAccountsRequest(page_size=2, page_token=token), metadata=metadata
        )
        seen += [a.id for a in page.accounts]
        assert page.total_count == 5
        if not page.has_next_page:
            break
        token = page.cursors[-1]
    promoted = await account.stub.SetRole(
        account_pb2.SetRoleRequest(account_id=customers[0].account.id, role=account_pb2.ROLE_ADMIN),
        metadata=metadata,
    )

    assert sorted(seen) == sorted([admin.account.id, *(c.account.id for c in customers)])
    assert promoted.account.role == account_pb2.ROLE_ADMIN
    [(event,)] = await account.execute(
        "SELECT event_type FROM outbox WHERE event_type = 'account.role_changed'"
    )
    assert event == "account.role_changed"


async def test_a_demoted_admin_loses_the_role_at_once_and_a_refresh_gives_the_new_one(account):
    admin = await make_admin(account)
    demoted = await make_admin(account)
    assert (
        await account.stub.ListAccounts(
            account_pb2.ListAccountsRequest(), metadata=bearer(demoted.tokens.access_token)
        )
    ).total_count == 2

    await account.stub.SetRole(
        account_pb2.SetRoleRequest(account_id=demoted.account.id, role=account_pb2.ROLE_CUSTOMER),
        metadata=bearer(admin.tokens.access_token),
    )

    stale = await rpc_error(
        account.stub.ListAccounts(
            account_pb2.ListAccountsRequest(), metadata=bearer(demoted.tokens.access_token)
        )
    )
    assert stale.code() == grpc.StatusCode.UNAUTHENTICATED
    refreshed = await account.stub.RefreshToken(
        account_pb2.RefreshTokenRequest(refresh_token=demoted.tokens.refresh_token)
    )
    forbidden = await rpc_error(
        account.stub.ListAccounts(
            account_pb2.ListAccountsRequest(), metadata=bearer(refreshed.tokens.access_token)
        )
    )
    assert forbidden.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refreshed.account.role == account_pb2.ROLE_CUSTOMER
    assert await get_me_code(account.stub, admin.tokens.access_token) == grpc.StatusCode.OK


@pytest.mark.parametrize("cursor", ["garbage", "eyJjIjogIjIwMjAifQ", "A" * 600])
async def test_a_forged_or_malformed_cursor_is_refused(account, cursor):
    admin = await make_admin(account)

    error = await rpc_error(
        account.stub.ListAccounts(
            account_pb2.ListAccountsRequest(page_size=2, page_token=cursor),
            metadata=bearer(admin.tokens.access_token),
        )
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert parse_rpc_error(error).violations[0].field == "page_token"


async def test_set_role_refuses_bad_input_and_self_demotion(account):
    admin = await make_admin(account)
    metadata = bearer(admin.tokens.access_token)

    unknown_role = await rpc_error(
        account.stub.SetRole(
            account_pb2.SetRoleRequest(account_id=admin.account.id, role=0), metadata=metadata
        )
    )
    bad_id = await rpc_error(
        account.stub.SetRole(
            account_pb2.SetRoleRequest(account_id="nope", role=account_pb2.ROLE_ADMIN), metadata=metadata
        )
    )
    missing = await rpc_error(
        account.stub.SetRole(
            account_pb2.SetRoleRequest(account_id=str(uuid.uuid4()), role=account_pb2.ROLE_ADMIN),
            metadata=metadata,
        )
    )
    demote_self = await rpc_error(
        account.stub.SetRole(
            account_pb2.SetRoleRequest(account_id=admin.account.id, role=account_pb2.ROLE_CUSTOMER),
            metadata=metadata,
        )
    )

    assert unknown_role.code() == bad_id.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert demote_self.code() == grpc.StatusCode.FAILED_PRECONDITION


# -- hostile tokens --------------------------------------------------------------------------


async def test_forged_and_foreign_tokens_are_unauthenticated(account):
    customer = await register(account.stub)
    subject = customer.account.id
    jwks = orjson.loads((await account.stub.GetJwks(account_pb2.GetJwksRequest())).jwks_json)
    jwk = jwks["keys"][0]
    public_pem = RSAAlgorithm.from_jwk(jwk).public_bytes(
        encoding=serialization.Encoding.PEM, format=serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stranger = SigningKey.generate(kid=jwk["kid"])
    real_key = account.app.service.signing_keys[0]
    forged = {
        "alg none": alg_none_token(claims(subject), jwk["kid"]),
        "hs256 with public key": hs256_with_public_key(claims(subject), public_pem, jwk["kid"]),
        "other key, same kid": signed(claims(subject), stranger),
        "expired": signed(claims(subject, lifetime=-3600), real_key),
        "other audience": signed(claims(subject, audience="someone-else"), real_key),
        "other issuer": signed(claims(subject, issuer="evil"), real_key),
        "no exp": signed({k: v for k, v in claims(subject).items() if k != "exp"}, real_key),
        "typ JWT, not an access token": signed(claims(subject), real_key, typ="JWT"),
        "typ of another token": signed(claims(subject), real_key, typ="refresh+jwt"),
        "no typ": signed(claims(subject), real_key, typ=""),
        "garbage": "not.a.jwt",
    }
    for name, token in forged.items():
        error = await rpc_error(account.stub.GetMe(account_pb2.GetMeRequest(), metadata=bearer(token)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, name
    genuine = signed(claims(subject, role="CUSTOMER"), real_key)
    me = await account.stub.GetMe(account_pb2.GetMeRequest(), metadata=bearer(genuine))
    assert me.account.id == subject


# -- signing keys -------------------------------------------------------------------------------


async def test_the_signing_key_rotates_under_load_without_refusing_a_request(account):
    email = unique_email()
    old_tokens = (await register(account.stub, email=email)).tokens
    service = account.app.service
    old_key = service.signing_keys[-1]
    new_key = SigningKey.generate()
    tokens = [old_tokens.access_token]
    answered: list[grpc.StatusCode] = []
    rotated = asyncio.Event()

    async def caller() -> None:
        # Keeps calling with every token known so far until the new key's token has been used a while.
        after_rotation = 0
        while after_rotation < 20:
            for token in list(tokens):
                answered.append(await get_me_code(account.stub, token))
            if rotated.is_set():
                after_rotation += 1

    async def rotate() -> None:
        await eventually(lambda: _at_least(answered, 10), what="calls before the rotation")
        service.use_keys([old_key, new_key])
        login = await account.stub.Login(account_pb2.LoginRequest(email=email, password=PASSWORD))
        tokens.append(login.tokens.access_token)
        rotated.set()

    try:
        await asyncio.gather(caller(), caller(), rotate())
        published = orjson.loads((await account.stub.GetJwks(account_pb2.GetJwksRequest())).jwks_json)
    finally:
        service.use_keys([old_key])

    assert jwt.get_unverified_header(tokens[-1])["kid"] == new_key.kid
    assert jwt.get_unverified_header(tokens[0])["kid"] == old_key.kid
    assert set(answered) == {grpc.StatusCode.OK}
    assert len(answered) >= 50
    assert [k["kid"] for k in published["keys"]] == [old_key.kid, new_key.kid]


async def _at_least(items: list, count: int) -> bool:
    return len(items) >= count
