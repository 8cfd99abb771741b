"""The account service over gRPC against real PostgreSQL, Redis and broker: registration, sign-in, refresh, logout, profile and roles."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from aiokafka import AIOKafkaConsumer

from ecommerce.account.v1 import account_pb2
from ecommerce.events.v1 import account_events_pb2, envelope_pb2
from servicekit.rpc_status import parse_rpc_error
from tests.helpers import (
    eventually,
    group_timeouts,
    unique_email,
)
from tests.integration.account_calls import PASSWORD, bearer, counts, make_admin, register, rpc_error

pytestmark = pytest.mark.usefixtures("clean_accounts")


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
