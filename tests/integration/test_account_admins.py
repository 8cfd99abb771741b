"""ListAdmins: the live administrators, oldest first, page by page, for a service (the notification
service writes every low-stock alert to each of them) or an administrator; nobody else."""

from __future__ import annotations

import os

import grpc
import pytest

from ecommerce.account.v1 import account_pb2
from servicekit.rpc_status import parse_rpc_error
from tests.integration.account_calls import PASSWORD, bearer, make_admin, register, rpc_error

pytestmark = pytest.mark.usefixtures("clean_accounts")


def as_service(token: str | None = None) -> list[tuple[str, str]]:
    return [
        ("x-service-token", os.environ["INTERNAL_SERVICE_TOKEN"] if token is None else token),
        ("x-service-name", "notification"),
    ]


async def every_admin(account, page_size: int, metadata) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    """The ids of every page, in order, and how many pages it took."""
    seen: list[str] = []
    token, pages = "", 0
    while True:
        page = await account.stub.ListAdmins(
            account_pb2.ListAdminsRequest(page_size=page_size, page_token=token), metadata=metadata
        )
        seen += [a.id for a in page.accounts]
        pages += 1
        token = page.next_page_token
        if not token:
            return seen, pages


async def test_a_service_pages_through_the_live_admins_oldest_first(account):
    admins = [await make_admin(account) for _ in range(4)]
    await register(account.stub)
    await register(account.stub)
    erased = admins.pop(1)
    await account.stub.DeleteMyAccount(
        account_pb2.DeleteMyAccountRequest(password=PASSWORD), metadata=bearer(erased.tokens.access_token)
    )

    seen, pages = await every_admin(account, 2, as_service())

    assert seen == [a.account.id for a in admins]
    assert pages == 2


async def test_an_admin_may_list_the_admins_and_a_page_size_of_zero_means_a_hundred(account):
    admin = await make_admin(account)

    page = await account.stub.ListAdmins(
        account_pb2.ListAdminsRequest(), metadata=bearer(admin.tokens.access_token)
    )

    assert [(a.id, a.email, a.role) for a in page.accounts] == [
        (admin.account.id, admin.account.email, account_pb2.ROLE_ADMIN)
    ]
    assert page.next_page_token == ""


async def test_a_customer_is_refused_and_an_anonymous_or_wrongly_credentialed_caller_unauthenticated(
    account,
):
    await make_admin(account)
    customer = await register(account.stub)

    refused = await rpc_error(
        account.stub.ListAdmins(
            account_pb2.ListAdminsRequest(), metadata=bearer(customer.tokens.access_token)
        )
    )
    anonymous = await rpc_error(account.stub.ListAdmins(account_pb2.ListAdminsRequest()))
    forged = await rpc_error(
        account.stub.ListAdmins(account_pb2.ListAdminsRequest(), metadata=as_service("x"))
    )

    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert anonymous.code() == forged.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("page_size", [-1, 101, 2**31 - 1], ids=["negative", "too-large", "huge"])
async def test_a_page_size_out_of_range_is_refused(account, page_size: int):
    error = await rpc_error(
        account.stub.ListAdmins(account_pb2.ListAdminsRequest(page_size=page_size), metadata=as_service())
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in parse_rpc_error(error).violations] == ["page_size"]


async def test_a_forged_oversized_or_foreign_page_token_is_refused(account):
    admin = await make_admin(account)
    await register(account.stub)
    accounts_cursor = (
        await account.stub.ListAccounts(
            account_pb2.ListAccountsRequest(page_size=1), metadata=bearer(admin.tokens.access_token)
        )
    ).cursors[0]

    for token in ("not-a-cursor", "x" * 10_000, "'; DROP TABLE accounts; --", accounts_cursor):
        error = await rpc_error(
            account.stub.ListAdmins(account_pb2.ListAdminsRequest(page_token=token), metadata=as_service())
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, token
        assert [v.field for v in parse_rpc_error(error).violations] == ["page_token"]
