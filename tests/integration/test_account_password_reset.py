"""A forgotten password: the reset link is e-mailed only for an existing account, works once and
not for long, is stored as a hash, is throttled, and a reset ends every session of the account."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from ecommerce.account.v1 import account_pb2
from ecommerce.events.v1 import account_events_pb2
from servicekit.rpc_status import parse_rpc_error
from servicekit.topics import AccountLink
from tests.helpers import unique_email
from tests.integration.account_calls import PASSWORD, bearer, register, rpc_error, staged_links, token_of

pytestmark = pytest.mark.usefixtures("clean_accounts")

NEW_PASSWORD = "a brand new passphrase"


async def reset_links(account) -> list[account_events_pb2.PasswordResetRequested]:
    return await staged_links(
        account, AccountLink.PASSWORD_RESET_REQUESTED, account_events_pb2.PasswordResetRequested
    )


async def request_reset(account, email: str, address: str = "192.0.2.1"):
    return await account.stub.RequestPasswordReset(
        account_pb2.RequestPasswordResetRequest(email=email), metadata=[("x-client-address", address)]
    )


async def reset(account, token: str, new_password: str = NEW_PASSWORD):
    return await account.stub.ResetPassword(
        account_pb2.ResetPasswordRequest(token=token, new_password=new_password)
    )


async def test_a_reset_link_is_staged_for_an_existing_account_and_its_token_is_stored_only_hashed(account):
    registered = await register(account.stub)

    answer = await request_reset(account, registered.account.email.upper())

    assert answer == account_pb2.RequestPasswordResetResponse()
    [event] = await reset_links(account)
    assert event.account_id == registered.account.id
    assert event.link.startswith(account.settings.shop_url.rstrip("/") + "/reset-password?token=")
    token = token_of(event.link)
    [(stored,)] = await account.execute("SELECT token_hash FROM one_time_tokens")
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    [(dump,)] = await account.execute("SELECT concat_ws(' ', t.*) FROM one_time_tokens t")
    assert token not in dump
    [(minutes,)] = await account.execute(
        "SELECT extract(epoch FROM expires_at - created_at) / 60 FROM one_time_tokens"
    )
    assert round(minutes) == 30


async def test_an_unknown_email_gets_the_same_answer_and_nothing_is_sent(account):
    await register(account.stub)

    answer = await request_reset(account, unique_email("nobody"))

    assert answer == account_pb2.RequestPasswordResetResponse()
    assert await reset_links(account) == []
    assert await account.execute("SELECT * FROM one_time_tokens") == []


@pytest.mark.parametrize(
    "email", ["", "   ", "not-an-address", "a@" + "b" * 260 + ".com", "x\x00@example.com", "<script>@x"]
)
async def test_a_malformed_email_is_bad_input_and_stages_nothing(account, email):
    error = await rpc_error(request_reset(account, email))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert parse_rpc_error(error).violations[0].field == "email"
    assert await reset_links(account) == []


async def test_requests_are_throttled_per_email_whether_or_not_the_account_exists(account):
    existing = (await register(account.stub)).account.email
    unknown = unique_email("nobody")
    limit = account.settings.password_resets_per_email
    for i in range(limit):
        await request_reset(account, existing, address=f"192.0.2.{i + 10}")
        await request_reset(account, unknown, address=f"192.0.2.{i + 10}")

    refused = [
        await rpc_error(request_reset(account, e, address="198.51.100.7")) for e in (existing, unknown)
    ]

    assert [e.code() for e in refused] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    assert refused[0].details() == refused[1].details()
    assert parse_rpc_error(refused[0]).retry_after >= 1
    assert len(await reset_links(account)) == limit


async def test_requests_are_throttled_per_client_address(account):
    for _ in range(account.settings.password_resets_per_client):
        await request_reset(account, unique_email("probe"), address="203.0.113.9")

    refused = await rpc_error(request_reset(account, unique_email("probe"), address="203.0.113.9"))
    elsewhere = await request_reset(account, unique_email("probe"), address="203.0.113.10")

    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert elsewhere == account_pb2.RequestPasswordResetResponse()


async def test_a_reset_sets_the_password_signs_in_and_ends_every_other_session(account):
    registered = await register(account.stub)
    email = registered.account.email
    old = registered.tokens
    await request_reset(account, email)
    [event] = await reset_links(account)

    session = await reset(account, token_of(event.link))

    assert session.account.id == registered.account.id
    await account.stub.GetMe(account_pb2.GetMeRequest(), metadata=bearer(session.tokens.access_token))
    old_access = await rpc_error(
        account.stub.GetMe(account_pb2.GetMeRequest(), metadata=bearer(old.access_token))
    )
    assert old_access.code() == grpc.StatusCode.UNAUTHENTICATED
    old_refresh = await rpc_error(
        account.stub.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=old.refresh_token))
    )
    assert old_refresh.code() == grpc.StatusCode.UNAUTHENTICATED
    old_password = await rpc_error(
        account.stub.Login(account_pb2.LoginRequest(email=email, password=PASSWORD))
    )
    assert old_password.code() == grpc.StatusCode.UNAUTHENTICATED
    await account.stub.Login(account_pb2.LoginRequest(email=email, password=NEW_PASSWORD))


async def test_a_used_an_expired_and_an_unknown_token_are_the_same_bad_input(account):
    registered = await register(account.stub)
    await request_reset(account, registered.account.email)
    await request_reset(account, registered.account.email)
    first, second = [token_of(e.link) for e in await reset_links(account)]
    await reset(account, second)
    await request_reset(account, registered.account.email)
    third = token_of((await reset_links(account))[-1].link)
    await account.execute(
        "UPDATE one_time_tokens SET expires_at = now() - interval '1 second' WHERE used_at IS NULL"
    )

    errors = [
        await rpc_error(reset(account, token, "yet another passphrase"))
        for token in (second, first, third, "no-such-token", "x" * 10_000, "")
    ]

    assert {e.code() for e in errors} == {grpc.StatusCode.INVALID_ARGUMENT}
    assert {e.details() for e in errors} == {errors[0].details()}
    assert {parse_rpc_error(e).violations[0].field for e in errors} == {"token"}
    await account.stub.Login(account_pb2.LoginRequest(email=registered.account.email, password=NEW_PASSWORD))


async def test_a_weak_new_password_is_refused_and_leaves_the_token_usable(account):
    registered = await register(account.stub)
    await request_reset(account, registered.account.email)
    token = token_of((await reset_links(account))[0].link)

    short = await rpc_error(reset(account, token, "short"))
    huge = await rpc_error(reset(account, token, "x" * 100))

    assert parse_rpc_error(short).violations[0].field == "new_password"
    assert parse_rpc_error(huge).violations[0].field == "new_password"
    await account.stub.Login(account_pb2.LoginRequest(email=registered.account.email, password=PASSWORD))
    assert (await reset(account, token)).account.id == registered.account.id
