"""The login throttle through aliases and batches: every aliased or batched login is an attempt."""

from __future__ import annotations

import httpx

from tests.e2e.gateway_protection.gateways import LOGIN
from tests.e2e.test_account_graphql import PASSWORD, codes, sign_up
from tests.helpers import unique_email

LOGIN_METHOD = "/ecommerce.account.v1.AccountService/Login"


def aliased_logins(count: int) -> str:
    logins = " ".join(
        f"l{i}: login(email: $email, password: $password) {{ accessToken }}" for i in range(count)
    )
    return f"mutation Many($email: String!, $password: String!) {{ {logins} }}"


async def test_every_aliased_login_calls_the_login_rpc(gateways):
    email = unique_email("aliases")
    await sign_up(gateways.shared, email=email)

    body = await gateways.lenient.post(aliased_logins(100), {"email": email, "password": PASSWORD})

    assert "errors" not in body, body
    assert len({v["accessToken"] for v in body["data"].values()}) == 100
    assert body["extensions"]["rpcCalls"] == {LOGIN_METHOD: 100}
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1000


async def test_aliased_wrong_logins_trip_the_login_throttle_exactly_as_single_requests_do(gateways):
    """Mutations run one after another and `login` is non-null, so the first failed attempt ends
    the document: 100 aliases are one attempt, counted like a request; the throttle trips after as
    many attempts either way."""
    by_document, by_request = unique_email("doc"), unique_email("req")
    for email in (by_document, by_request):
        await sign_up(gateways.shared, email=email)
    wrong = "not the password"

    documents = [
        await gateways.lenient.post(aliased_logins(100), {"email": by_document, "password": wrong})
        for _ in range(6)
    ]
    requests = [
        await gateways.lenient.post(LOGIN, {"email": by_request, "password": wrong}) for _ in range(6)
    ]
    right_password = await gateways.lenient.post(LOGIN, {"email": by_document, "password": PASSWORD})

    assert [codes(b) for b in documents] == [codes(b) for b in requests], (documents, requests)
    assert [codes(b) for b in documents] == [["UNAUTHENTICATED"]] * 5 + [["RATE_LIMITED"]]
    assert [b["extensions"]["rpcCalls"] for b in documents] == [{LOGIN_METHOD: 1}] * 6
    assert codes(right_password) == ["RATE_LIMITED"]


async def test_each_login_of_a_batch_is_an_attempt_against_the_throttle(gateways):
    email = unique_email("batch")
    await sign_up(gateways.shared, email=email)
    batch = [{"query": LOGIN, "variables": {"email": email, "password": "not the password"}}] * 10

    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(gateways.lenient.url, json=batch)
    right_password = await gateways.lenient.post(LOGIN, {"email": email, "password": PASSWORD})

    results = [codes(b) for b in response.json()]
    assert [b["extensions"]["rpcCalls"] for b in response.json()] == [{LOGIN_METHOD: 1}] * 10
    assert set(map(tuple, results)) <= {("UNAUTHENTICATED",), ("RATE_LIMITED",)}
    # The operations of a batch run concurrently: at least the first five attempts fail as
    # attempts (more may pass the throttle's check before the failures are counted, as with
    # concurrent requests); afterwards the throttle holds.
    assert results.count(["UNAUTHENTICATED"]) >= 5
    assert codes(right_password) == ["RATE_LIMITED"]


async def test_wrong_passwords_from_one_address_do_not_lock_the_owner_out_elsewhere(gateways):
    email = unique_email("owner")
    await sign_up(gateways.shared, email=email)
    wrong = {"email": email, "password": "not the password"}

    attacker = [await gateways.lenient.post(LOGIN, wrong, address="127.0.0.40") for _ in range(6)]
    attacker_right = await gateways.lenient.post(LOGIN, {**wrong, "password": PASSWORD}, address="127.0.0.40")
    owner = await gateways.lenient.post(LOGIN, {**wrong, "password": PASSWORD}, address="127.0.0.41")

    assert [codes(b) for b in attacker] == [["UNAUTHENTICATED"]] * 5 + [["RATE_LIMITED"]]
    assert attacker[-1]["errors"][0]["extensions"]["retryAfter"] >= 1
    assert codes(attacker_right) == ["RATE_LIMITED"]
    assert "errors" not in owner, owner
    assert owner["data"]["login"]["accessToken"]
