"""Access tokens die when they should: after a password or role change, when forged or foreign, and never when the signing key rotates."""

from __future__ import annotations

import asyncio

import grpc
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from ecommerce.account.v1 import account_pb2
from servicekit.rpc_status import parse_rpc_error
from servicekit.security import SigningKey
from tests.helpers import (
    alg_none_token,
    claims,
    eventually,
    hs256_with_public_key,
    signed,
    unique_email,
)
from tests.integration.account_calls import PASSWORD, bearer, make_admin, register, rpc_error

pytestmark = pytest.mark.usefixtures("clean_accounts")


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
