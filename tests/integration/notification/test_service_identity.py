"""The internal service credential: a peer presents `x-service-token` (the shared
INTERNAL_SERVICE_TOKEN) to call as itself, role SERVICE; the account service lets it read the
recipients of its messages and nothing reserved to administrators."""

from __future__ import annotations

import os

import grpc
import pytest

from ecommerce.account.v1 import account_pb2
from servicekit.auth import SERVICE, Authenticator
from servicekit.errors import Unauthenticated
from tests.helpers import unique_email
from tests.integration.conftest import AccountHarness
from tests.integration.notification.conftest import rpc_error


def service_metadata(token: str, name: str = "notification") -> list[tuple[str, str]]:
    return [("x-service-token", token), ("x-service-name", name)]


async def registered(account: AccountHarness) -> account_pb2.Account:
    response = await account.stub.Register(
        account_pb2.RegisterRequest(email=unique_email(), name="Ada", password="correct horse battery")
    )
    return response.account


async def test_a_service_with_the_shared_credential_reads_any_account(account: AccountHarness):
    ada, bob = await registered(account), await registered(account)

    response = await account.stub.BatchGetAccounts(
        account_pb2.BatchGetAccountsRequest(ids=[ada.id, bob.id]),
        metadata=service_metadata(os.environ["INTERNAL_SERVICE_TOKEN"]),
    )

    assert {a.email for a in response.accounts} == {ada.email, bob.email}


@pytest.mark.parametrize(
    "token",
    ["wrong", "", "x" * 4_000, os.environ["INTERNAL_SERVICE_TOKEN"][:-1]],
    ids=["wrong", "empty", "oversized", "truncated"],
)
async def test_a_wrong_service_credential_is_unauthenticated(account: AccountHarness, token: str):
    ada = await registered(account)

    code, _ = await rpc_error(
        account.stub.BatchGetAccounts(
            account_pb2.BatchGetAccountsRequest(ids=[ada.id]), metadata=service_metadata(token)
        )
    )

    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_a_service_is_no_administrator(account: AccountHarness):
    code, _ = await rpc_error(
        account.stub.ListAccounts(
            account_pb2.ListAccountsRequest(page_size=10),
            metadata=service_metadata(os.environ["INTERNAL_SERVICE_TOKEN"]),
        )
    )

    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_without_a_configured_credential_every_service_token_is_refused():
    authenticator = Authenticator(keys=None, service_token="")  # type: ignore[arg-type]

    with pytest.raises(Unauthenticated):
        authenticator.authenticate_service("", "notification")


def test_the_service_name_is_taken_only_when_it_is_a_plain_name():
    authenticator = Authenticator(keys=None, service_token="s3cret")  # type: ignore[arg-type]

    assert authenticator.authenticate_service("s3cret", "notification").account_id == "service:notification"
    assert authenticator.authenticate_service("s3cret", "admin\nrole").account_id == "service:unknown"
    assert authenticator.authenticate_service("s3cret", None).role == SERVICE
