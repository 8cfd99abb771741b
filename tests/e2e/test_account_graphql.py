"""Every account operation through HTTP GraphQL, as a client would use it, with hostile input."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import grpc
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from ecommerce.account.v1 import account_pb2, account_pb2_grpc
from tests.helpers import alg_none_token, claims, eventually, hs256_with_public_key, unique_email

PASSWORD = "correct horse battery"

REGISTER = """
mutation Register($input: RegisterInput!) {
  register(input: $input) { accessToken refreshToken expiresIn account { id email name role } }
}"""
LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { accessToken refreshToken account { id email role } }
}"""
REFRESH = """
mutation Refresh($token: String!) { refreshToken(refreshToken: $token) { accessToken refreshToken } }"""
LOGOUT = "mutation Logout($token: String!) { logout(refreshToken: $token) }"
ME = "query { me { id email name role createdAt updatedAt } }"
UPDATE_PROFILE = "mutation Update($name: String!) { updateProfile(name: $name) { id name } }"
CHANGE_PASSWORD = """
mutation Change($current: String!, $new: String!) { changePassword(currentPassword: $current, newPassword: $new) }"""
ACCOUNTS = """
query Accounts($first: Int, $after: String) {
  accounts(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id email role } }
  }
}"""
SET_ROLE = """
mutation SetRole($id: ID!, $role: Role!) { setAccountRole(accountId: $id, role: $role) { id role } }"""
MY_ORDERS = "query { myOrders(first: 1) { totalCount } }"


def codes(body: dict) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


def first_error(body: dict) -> dict:
    assert body.get("errors"), body
    return body["errors"][0]


async def sign_up(gateway, email: str | None = None, name: str = "Ada") -> dict:
    body = await gateway.post(
        REGISTER, {"input": {"name": name, "email": email or unique_email(), "password": PASSWORD}}
    )
    assert "errors" not in body, body
    return body["data"]["register"]


async def admin_session(gateway) -> dict:
    email = unique_email("admin")
    result = gateway.run_cli("create-admin", "--email", email, "--name", "Admin", stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert "Created administrator" in result.stdout
    body = await gateway.post(LOGIN, {"email": email, "password": PASSWORD})
    return body["data"]["login"]


async def test_a_visitor_registers_logs_in_and_reads_me(gateway):
    email = unique_email()
    registered = await sign_up(gateway, email=email, name="Ada Lovelace")

    login = await gateway.post(LOGIN, {"email": email, "password": PASSWORD})
    me = await gateway.post(ME, token=login["data"]["login"]["accessToken"])

    assert registered["account"]["role"] == "CUSTOMER"
    assert registered["expiresIn"] == 900
    assert me["data"]["me"]["email"] == email
    assert me["data"]["me"]["name"] == "Ada Lovelace"


async def test_refresh_rotates_and_reusing_the_old_token_ends_the_session(gateway):
    session = await sign_up(gateway)

    rotated = await gateway.post(REFRESH, {"token": session["refreshToken"]})
    reused = await gateway.post(REFRESH, {"token": session["refreshToken"]})
    after = await gateway.post(REFRESH, {"token": rotated["data"]["refreshToken"]["refreshToken"]})

    assert rotated["data"]["refreshToken"]["refreshToken"] != session["refreshToken"]
    assert codes(reused) == codes(after) == ["UNAUTHENTICATED"]


async def test_logout_ends_the_session_and_the_access_token(gateway):
    session = await sign_up(gateway)

    out = await gateway.post(LOGOUT, {"token": session["refreshToken"]}, token=session["accessToken"])
    me = await gateway.post(ME, token=session["accessToken"])
    refresh = await gateway.post(REFRESH, {"token": session["refreshToken"]})

    assert out["data"]["logout"] is True
    assert codes(me) == codes(refresh) == ["UNAUTHENTICATED"]


async def test_update_profile_and_change_password(gateway):
    email = unique_email()
    session = await sign_up(gateway, email=email)
    token = session["accessToken"]

    renamed = await gateway.post(UPDATE_PROFILE, {"name": "Grace Hopper"}, token=token)
    wrong = await gateway.post(
        CHANGE_PASSWORD, {"current": "not the password", "new": "another passphrase"}, token=token
    )
    changed = await gateway.post(
        CHANGE_PASSWORD, {"current": PASSWORD, "new": "another passphrase"}, token=token
    )
    old = await gateway.post(LOGIN, {"email": email, "password": PASSWORD})
    new = await gateway.post(LOGIN, {"email": email, "password": "another passphrase"})

    assert renamed["data"]["updateProfile"]["name"] == "Grace Hopper"
    assert codes(wrong) == ["BAD_USER_INPUT"]
    assert first_error(wrong)["extensions"]["field"] == "currentPassword"
    assert changed["data"]["changePassword"] is True
    assert codes(old) == ["UNAUTHENTICATED"]
    assert new["data"]["login"]["account"]["email"] == email


async def test_a_password_change_refuses_every_access_token_issued_before_it(gateway):
    email = unique_email()
    first = await sign_up(gateway, email=email)
    second = (await gateway.post(LOGIN, {"email": email, "password": PASSWORD}))["data"]["login"]

    changed = await gateway.post(
        CHANGE_PASSWORD, {"current": PASSWORD, "new": "another passphrase"}, token=first["accessToken"]
    )
    fresh = (await gateway.post(LOGIN, {"email": email, "password": "another passphrase"}))["data"]["login"]

    assert changed["data"]["changePassword"] is True
    for old in (first, second):
        assert codes(await gateway.post(ME, token=old["accessToken"])) == ["UNAUTHENTICATED"]
        assert codes(await gateway.post(MY_ORDERS, token=old["accessToken"])) == ["UNAUTHENTICATED"]
        assert codes(await gateway.post(REFRESH, {"token": old["refreshToken"]})) == ["UNAUTHENTICATED"]
    me = await gateway.post(ME, token=fresh["accessToken"])
    assert me["data"]["me"]["email"] == email


async def test_a_demoted_admin_is_refused_until_a_refresh_brings_the_new_role(gateway):
    admin = await admin_session(gateway)
    demoted = await admin_session(gateway)

    await gateway.post(
        SET_ROLE, {"id": demoted["account"]["id"], "role": "CUSTOMER"}, token=admin["accessToken"]
    )
    stale = await gateway.post(ACCOUNTS, {"first": 1}, token=demoted["accessToken"])
    refreshed = await gateway.post(REFRESH, {"token": demoted["refreshToken"]})
    token = refreshed["data"]["refreshToken"]["accessToken"]

    assert codes(stale) == ["UNAUTHENTICATED"]
    assert codes(await gateway.post(ACCOUNTS, {"first": 1}, token=token)) == ["FORBIDDEN"]
    assert (await gateway.post(ME, token=token))["data"]["me"]["role"] == "CUSTOMER"


async def test_the_signing_key_rotates_while_clients_call_and_no_request_is_refused(gateway):
    """`ecommerce rotate-keys` and a restart of the account service, as an operator would do it,
    while clients keep calling the order service through the gateway with old and new tokens."""
    email = unique_email()
    old = (await sign_up(gateway, email=email))["accessToken"]
    key_file = gateway.platform.infra.data_dir / "keys" / "jwt-signing.pem"
    tokens = [old]
    answers: list[list[str]] = []
    done = asyncio.Event()

    async def client() -> None:
        while not done.is_set():
            for token in list(tokens):
                answers.append(codes(await gateway.post(MY_ORDERS, token=token)))

    async def operator() -> None:
        try:
            await eventually(lambda: _more_than(answers, 10), what="calls before the rotation")
            rotated = gateway.run_cli("rotate-keys", str(key_file))
            assert rotated.returncode == 0, rotated.stderr
            await gateway.platform.restart("account")

            async def signed_in() -> str | None:
                # The gateway's channel reconnects to the restarted service: a client signs in again.
                login = await gateway.post(LOGIN, {"email": email, "password": PASSWORD})
                return (login.get("data") or {}).get("login", {}).get("accessToken")

            tokens.append(await eventually(signed_in, timeout=30, what="a sign-in after the restart"))
            calls = len(answers)
            await eventually(lambda: _more_than(answers, calls + 20), what="calls with the new token")
        finally:
            done.set()

    await asyncio.gather(client(), client(), operator())

    assert jwt.get_unverified_header(tokens[1])["kid"] != jwt.get_unverified_header(old)["kid"]
    assert [a for a in answers if a] == []
    assert codes(await gateway.post(ME, token=old)) == []
    assert codes(await gateway.post(ME, token=tokens[1])) == []


async def _more_than(items: list, count: int) -> bool:
    return len(items) > count


async def test_an_admin_lists_accounts_and_sets_a_role(gateway):
    admin = await admin_session(gateway)
    customer = await sign_up(gateway)

    first_page = await gateway.post(ACCOUNTS, {"first": 1}, token=admin["accessToken"])
    connection = first_page["data"]["accounts"]
    second_page = await gateway.post(
        ACCOUNTS, {"first": 1, "after": connection["pageInfo"]["endCursor"]}, token=admin["accessToken"]
    )
    promoted = await gateway.post(
        SET_ROLE, {"id": customer["account"]["id"], "role": "ADMIN"}, token=admin["accessToken"]
    )

    forged = await gateway.post(ACCOUNTS, {"first": 1, "after": "forged"}, token=admin["accessToken"])

    assert connection["totalCount"] >= 2
    assert connection["pageInfo"]["hasNextPage"] is True
    assert codes(forged) == ["BAD_USER_INPUT"]
    assert first_error(forged)["extensions"]["field"] == "after"
    assert second_page["data"]["accounts"]["edges"][0]["node"]["id"] != connection["edges"][0]["node"]["id"]
    assert promoted["data"]["setAccountRole"]["role"] == "ADMIN"


async def test_a_customer_calling_admin_operations_is_forbidden(gateway):
    customer = await sign_up(gateway)

    listing = await gateway.post(ACCOUNTS, {"first": 5}, token=customer["accessToken"])
    promote = await gateway.post(
        SET_ROLE, {"id": customer["account"]["id"], "role": "ADMIN"}, token=customer["accessToken"]
    )
    me = await gateway.post(ME, token=customer["accessToken"])

    assert codes(listing) == codes(promote) == ["FORBIDDEN"]
    assert me["data"]["me"]["role"] == "CUSTOMER"


async def test_anonymous_callers_get_unauthenticated(gateway):
    for document, variables in ((ME, {}), (UPDATE_PROFILE, {"name": "x"}), (ACCOUNTS, {"first": 1})):
        assert codes(await gateway.post(document, variables)) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"name": "Ada", "email": "not-an-email", "password": PASSWORD}, "email"),
        ({"name": "", "email": "ada@example.com", "password": PASSWORD}, "name"),
        ({"name": "x" * 1_000_000, "email": "ada@example.com", "password": PASSWORD}, "name"),
        ({"name": "Ada", "email": "ada@example.com", "password": "short"}, "password"),
        ({"name": "Ada", "email": "ada@example.com", "password": "p" * 73}, "password"),
        (
            {"name": "<img src=x onerror=alert(1)>\x07", "email": "ada@example.com", "password": PASSWORD},
            "name",
        ),
    ],
)
async def test_register_with_bad_input_is_bad_user_input_naming_the_field(gateway, variables, field):
    body = await gateway.post(REGISTER, {"input": variables})

    assert codes(body) == ["BAD_USER_INPUT"]
    assert first_error(body)["extensions"]["field"] == field
    login = await gateway.post(LOGIN, {"email": variables["email"], "password": variables["password"]})
    assert "errors" in login


async def test_a_missing_argument_is_a_validation_error_not_a_crash(gateway):
    body = await gateway.post('mutation { login(email: "a@example.com") { accessToken } }')

    assert body["data"] is None
    assert "password" in first_error(body)["message"]


async def test_a_duplicate_email_is_conflict(gateway):
    email = unique_email()
    await sign_up(gateway, email=email)

    body = await gateway.post(
        REGISTER, {"input": {"name": "Again", "email": email.upper(), "password": PASSWORD}}
    )

    assert codes(body) == ["CONFLICT"]
    assert first_error(body)["extensions"]["field"] == "email"


async def test_invalid_utf8_and_oversized_bodies_get_a_clear_error(gateway):
    bad_utf8 = await gateway.client.post(
        gateway.url,
        content=b'{"query": "query { me { id } }", "x": "\xff\xfe"}',
        headers={"content-type": "application/json"},
    )
    huge = await gateway.client.post(
        gateway.url,
        content=b'{"query": "' + b"a" * (3 * 1024 * 1024) + b'"}',
        headers={"content-type": "application/json"},
    )

    assert bad_utf8.status_code == 400
    assert huge.status_code == 413
    assert huge.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_hostile_tokens_are_unauthenticated(gateway):
    session = await sign_up(gateway)
    subject = session["account"]["id"]
    header = jwt.get_unverified_header(session["accessToken"])
    jwks_json = await _jwks(gateway)
    public_pem = _public_pem(jwks_json, header["kid"])
    real = jwt.decode(session["accessToken"], options={"verify_signature": False})
    now = int(time.time())
    tokens = {
        "alg none": alg_none_token(claims(subject, role="ADMIN"), header["kid"]),
        "hs256 signed with the public key": hs256_with_public_key(
            claims(subject, role="ADMIN"), public_pem, header["kid"]
        ),
        "tampered payload": _tamper(session["accessToken"], {**real, "role": "ADMIN"}),
        "garbage": "abc.def.ghi",
        "huge": "a" * 20_000,
        "unknown kid": alg_none_token(claims(subject), uuid.uuid4().hex),
        "expired-looking": _tamper(session["accessToken"], {**real, "exp": now - 10}),
    }
    for name, token in tokens.items():
        body = await gateway.post(ME, token=token)
        assert codes(body) == ["UNAUTHENTICATED"], name
    promote = await gateway.post(SET_ROLE, {"id": subject, "role": "ADMIN"}, token=tokens["alg none"])
    assert codes(promote) == ["UNAUTHENTICATED"]


async def test_alias_and_token_limits_refuse_before_execution(gateway):
    email = unique_email()
    await sign_up(gateway, email=email)
    many_logins = (
        "mutation { "
        + " ".join(
            f'a{i}: login(email: "{email}", password: "wrong-{i}") {{ accessToken }}' for i in range(16)
        )
        + " }"
    )
    many_tokens = "query { " + "__typename " * 3000 + "}"

    aliased = await gateway.post(many_logins)
    tokens = await gateway.post(many_tokens)
    login = await gateway.post(LOGIN, {"email": email, "password": PASSWORD})

    assert "aliases" in first_error(aliased)["message"].lower()
    assert aliased["data"] is None
    assert "token" in first_error(tokens)["message"].lower()
    # Nothing executed: the refused document made no failed login attempt.
    assert login["data"]["login"]["account"]["email"] == email


async def test_unknown_fields_are_refused_with_a_validation_error(gateway):
    body = await gateway.post("query { me { passwordHash } }")

    assert body["data"] is None
    assert "passwordHash" in first_error(body)["message"]


async def _jwks(gateway) -> dict:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.platform.ports['account']}") as channel:
        response = await account_pb2_grpc.AccountServiceStub(channel).GetJwks(account_pb2.GetJwksRequest())
    return orjson.loads(response.jwks_json)


def _public_pem(jwks: dict, kid: str) -> bytes:
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    return RSAAlgorithm.from_jwk(jwk).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _tamper(token: str, payload: dict) -> str:
    """Keep the real signature, change the claims: the signature no longer matches."""
    header, _, signature = token.split(".")
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"{header}.{body}.{signature}"


async def test_graphiql_is_served_outside_production(gateway):
    response = await gateway.client.get(gateway.url, headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_every_log_line_is_json_and_the_request_id_reaches_the_service(gateway):
    session = await sign_up(gateway)
    request_id = uuid.uuid4().hex
    await gateway.client.post(
        gateway.url,
        json={"query": ME},
        headers={"X-Request-Id": request_id, "Authorization": f"Bearer {session['accessToken']}"},
    )
    log_file = gateway.platform.log_dir / "account.log"

    def lines() -> list[dict]:
        return [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]

    async def logged() -> bool:
        return any(line.get("request_id") == request_id for line in lines())

    await eventually(logged, what="the account service's log line with the request id")
    rpc = next(line for line in lines() if line.get("request_id") == request_id)
    assert rpc["rpc_method"] == "/ecommerce.account.v1.AccountService/GetMe"
    assert rpc["account_id"] == session["account"]["id"]
    assert all({"timestamp", "level", "logger", "message", "service"} <= line.keys() for line in lines())
