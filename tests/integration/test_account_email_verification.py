"""Proving an e-mail address: a verification link that works once and not forever, a claim in the
access token that checkout reads, and, when the shop requires verification, a `register` that says
nothing about whether an e-mail is taken."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import jwt
import pytest

from account.__main__ import build
from ecommerce.account.v1 import account_pb2, account_pb2_grpc
from ecommerce.events.v1 import account_events_pb2
from servicekit.rpc_status import parse_rpc_error
from servicekit.topics import AccountEvent, AccountLink
from tests.helpers import unique_email
from tests.integration.account_calls import PASSWORD, bearer, register, rpc_error, staged_links, token_of
from tests.integration.harness import InProcess

pytestmark = pytest.mark.usefixtures("clean_accounts")


async def verification_links(account) -> list[account_events_pb2.EmailVerificationRequested]:
    return await staged_links(
        account, AccountLink.EMAIL_VERIFICATION_REQUESTED, account_events_pb2.EmailVerificationRequested
    )


def claims_of(access_token: str) -> dict:
    return jwt.decode(access_token, options={"verify_signature": False})


async def request_verification(stub, access_token: str):
    return await stub.RequestEmailVerification(
        account_pb2.RequestEmailVerificationRequest(), metadata=bearer(access_token)
    )


async def test_a_verification_link_marks_the_email_verified_once(account):
    registered = await register(account.stub)
    assert registered.account.email_verified is False
    assert claims_of(registered.tokens.access_token)["email_verified"] is False

    await request_verification(account.stub, registered.tokens.access_token)
    [event] = await verification_links(account)
    assert event.account_id == registered.account.id
    assert event.link.startswith(account.settings.shop_url.rstrip("/") + "/verify-email?token=")
    [(days,)] = await account.execute(
        "SELECT extract(epoch FROM expires_at - created_at) / 86400 FROM one_time_tokens"
    )
    assert round(days) == 7

    verified = await account.stub.VerifyEmail(account_pb2.VerifyEmailRequest(token=token_of(event.link)))

    assert verified.account.email_verified is True
    again = await rpc_error(
        account.stub.VerifyEmail(account_pb2.VerifyEmailRequest(token=token_of(event.link)))
    )
    assert again.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert parse_rpc_error(again).violations[0].field == "token"
    # The old access token says "not verified": refused, and its refresh says "verified".
    stale = await rpc_error(
        account.stub.GetMe(account_pb2.GetMeRequest(), metadata=bearer(registered.tokens.access_token))
    )
    assert stale.code() == grpc.StatusCode.UNAUTHENTICATED
    fresh = await account.stub.RefreshToken(
        account_pb2.RefreshTokenRequest(refresh_token=registered.tokens.refresh_token)
    )
    assert claims_of(fresh.tokens.access_token)["email_verified"] is True
    me = await account.stub.GetMe(account_pb2.GetMeRequest(), metadata=bearer(fresh.tokens.access_token))
    assert me.account.email_verified is True


async def test_an_expired_and_an_unknown_verification_token_are_the_same_bad_input(account):
    registered = await register(account.stub)
    await request_verification(account.stub, registered.tokens.access_token)
    [event] = await verification_links(account)
    await account.execute("UPDATE one_time_tokens SET expires_at = now() - interval '1 second'")

    errors = [
        await rpc_error(account.stub.VerifyEmail(account_pb2.VerifyEmailRequest(token=token)))
        for token in (token_of(event.link), "unknown", "", "y" * 5000)
    ]

    assert {e.code() for e in errors} == {grpc.StatusCode.INVALID_ARGUMENT}
    assert len({e.details() for e in errors}) == 1
    [(verified,)] = await account.execute("SELECT email_verified FROM accounts")
    assert verified is False


async def test_a_password_reset_token_does_not_verify_and_a_reset_does(account):
    registered = await register(account.stub)
    await account.stub.RequestPasswordReset(
        account_pb2.RequestPasswordResetRequest(email=registered.account.email)
    )
    [(token_hash,)] = await account.execute("SELECT token_hash FROM one_time_tokens")
    [reset_event] = await staged_links(
        account, AccountLink.PASSWORD_RESET_REQUESTED, account_events_pb2.PasswordResetRequested
    )
    token = token_of(reset_event.link)

    wrong_kind = await rpc_error(account.stub.VerifyEmail(account_pb2.VerifyEmailRequest(token=token)))
    session = await account.stub.ResetPassword(
        account_pb2.ResetPasswordRequest(token=token, new_password="another good passphrase")
    )

    assert wrong_kind.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert token_hash
    assert session.account.email_verified is True
    assert claims_of(session.tokens.access_token)["email_verified"] is True


async def test_asking_needs_a_sign_in_sends_nothing_once_verified_and_is_limited(account):
    anonymous = await rpc_error(
        account.stub.RequestEmailVerification(account_pb2.RequestEmailVerificationRequest())
    )
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED

    registered = await register(account.stub)
    token = registered.tokens.access_token
    for _ in range(account.settings.email_verifications_per_account):
        await request_verification(account.stub, token)
    limited = await rpc_error(request_verification(account.stub, token))
    assert limited.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(await verification_links(account)) == account.settings.email_verifications_per_account

    other = await register(account.stub)
    await account.execute("UPDATE accounts SET email_verified = true WHERE id = :id", id=other.account.id)
    await request_verification(account.stub, other.tokens.access_token)
    assert [e.account_id for e in await verification_links(account)].count(other.account.id) == 0


# -- ACCOUNT_REQUIRE_EMAIL_VERIFICATION -----------------------------------------------------------


@pytest.fixture
async def requiring(account) -> AsyncIterator[account_pb2_grpc.AccountServiceStub]:
    """A second account service on the same database, with verification required."""
    settings = account.settings.model_copy(update={"account_require_email_verification": True})
    service = InProcess(lambda: build(settings), account_pb2_grpc.AccountServiceStub)
    async with service.running():
        yield service.stub


async def outbox_types(account) -> list[str]:
    return [t for (t,) in await account.execute("SELECT event_type FROM outbox ORDER BY id")]


async def test_register_answers_alike_whether_or_not_the_email_is_taken(account, requiring):
    email = unique_email()
    fresh = await register(requiring, email=email, name="First Owner")
    [(owner_id,)] = await account.execute("SELECT id FROM accounts")
    before = await outbox_types(account)

    taken = await register(requiring, email=email.upper(), name="Someone Else", password="another passphrase")

    for answer in (fresh, taken):
        assert answer.tokens == account_pb2.TokenPair(token_type="Bearer")
        assert answer.account.email == email
        assert answer.account.email_verified is False
        assert answer.account.role == account_pb2.ROLE_CUSTOMER
    assert (fresh.account.name, taken.account.name) == ("First Owner", "Someone Else")
    assert fresh.account.id != taken.account.id
    assert set(before) == {AccountEvent.REGISTERED, AccountLink.EMAIL_VERIFICATION_REQUESTED}
    assert (await outbox_types(account))[len(before) :] == [AccountEvent.REGISTRATION_ATTEMPTED]
    [(count,)] = await account.execute("SELECT count(*) FROM accounts")
    assert count == 1
    # The owner's password and name are untouched; the first registration's link verifies it.
    signed_in = await account.stub.Login(account_pb2.LoginRequest(email=email, password=PASSWORD))
    assert (signed_in.account.id, signed_in.account.name) == (str(owner_id), "First Owner")
    [event] = await verification_links(account)
    assert event.account_id == str(owner_id)


async def test_an_unverified_account_may_sign_in_with_a_token_that_says_so(account, requiring):
    email = unique_email()
    await register(requiring, email=email)

    session = await requiring.Login(account_pb2.LoginRequest(email=email, password=PASSWORD))

    assert session.account.email_verified is False
    assert claims_of(session.tokens.access_token)["email_verified"] is False


async def test_bad_input_is_still_named_when_verification_is_required(requiring):
    error = await rpc_error(register(requiring, email="not-an-address", password="short"))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in parse_rpc_error(error).violations} == {"email", "password"}
