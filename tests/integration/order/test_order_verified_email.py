"""With ACCOUNT_REQUIRE_EMAIL_VERIFICATION, a customer whose access token does not say the e-mail
is verified cannot check out; without it, nobody is asked."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest

from servicekit.rpc_status import parse_rpc_error
from tests.integration.order.helpers import create_request


@pytest.fixture
def requiring(orders) -> Iterator:
    orders.app.service.placement.require_email_verification = True
    try:
        yield orders
    finally:
        orders.app.service.placement.require_email_verification = False


def bearer(orders, email_verified: bool | None, role: str = "CUSTOMER") -> list[tuple[str, str]]:
    extra = {} if email_verified is None else {"email_verified": email_verified}
    token, _ = orders.keys.issuer.issue(str(uuid.uuid4()), role, extra)
    return [("authorization", f"Bearer {token}")]


@pytest.mark.parametrize("claim", [False, None])
async def test_an_unverified_customer_is_refused_and_nothing_is_written(requiring, claim):
    product = requiring.catalog.add()

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await requiring.stub.CreateOrder(
            create_request([(product, 1)]), metadata=bearer(requiring, email_verified=claim)
        )

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert parse_rpc_error(refused.value).reason == "EMAIL_NOT_VERIFIED"
    assert await requiring.scalar("SELECT count(*) FROM orders") == 0
    assert requiring.catalog.calls == []


async def test_a_verified_customer_checks_out(requiring):
    product = requiring.catalog.add()

    placed = await requiring.stub.CreateOrder(
        create_request([(product, 1)]), metadata=bearer(requiring, email_verified=True)
    )

    assert placed.order.id


async def test_without_the_requirement_an_unverified_customer_checks_out(orders):
    product = orders.catalog.add()

    placed = await orders.stub.CreateOrder(create_request([(product, 1)]), metadata=bearer(orders, False))

    assert placed.order.id
