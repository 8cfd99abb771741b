"""deleteMyAccount in the account service: the password confirmed as for a password change, the
row anonymised (its e-mail free to register again), the addresses, links and registration events
gone, every session ended and `account.deleted` staged; a refused call changes nothing."""

from __future__ import annotations

import grpc
import pytest

from ecommerce.account.v1 import account_pb2
from ecommerce.events.v1 import account_events_pb2, envelope_pb2
from servicekit.auth import SERVICE
from servicekit.context import CUSTOMER, Caller
from servicekit.errors import NotFound
from servicekit.kafka import unpack
from servicekit.rpc_status import parse_rpc_error
from servicekit.topics import AccountEvent
from tests.helpers import unique_email
from tests.integration.account_calls import PASSWORD, bearer, register, rpc_error

pytestmark = pytest.mark.usefixtures("clean_accounts")

STREET = "7 Erasable Lane"


async def registered_with_address(account, email: str):
    registered = await register(account.stub, email=email)
    who = bearer(registered.tokens.access_token)
    fields = account_pb2.AddressFields(
        name="Ada Lovelace", line1=STREET, city="London", postal_code="N1 9GU", country="GB"
    )
    await account.stub.AddAddress(account_pb2.AddAddressRequest(fields=fields), metadata=who)
    return registered, who


async def delete(account, who, password: str = PASSWORD):
    return await account.stub.DeleteMyAccount(
        account_pb2.DeleteMyAccountRequest(password=password), metadata=who
    )


async def personal_rows(account, email: str) -> int:
    """Rows of the account service that still hold the e-mail or the street (any column, as text)."""
    [(found,)] = await account.execute(
        "SELECT (SELECT count(*) FROM accounts WHERE email = :e OR name <> '')"
        " + (SELECT count(*) FROM addresses WHERE line1 = :s)"
        " + (SELECT count(*) FROM outbox WHERE position(convert_to(:e, 'UTF8') in payload) > 0)",
        e=email,
        s=STREET,
    )
    return found


async def test_deleting_erases_the_account_ends_its_sessions_and_frees_its_email(account):
    email = unique_email()
    registered, who = await registered_with_address(account, email)
    account_id = registered.account.id
    assert await personal_rows(account, email) > 0

    await delete(account, who)

    assert await personal_rows(account, email) == 0
    [(stored_email, name, password_hash, deleted)] = await account.execute(
        "SELECT email, name, password_hash, deleted_at IS NOT NULL FROM accounts WHERE id = :i", i=account_id
    )
    assert stored_email == f"deleted-{account_id}@invalid"
    assert (name, password_hash, deleted) == ("", "", True)
    rows = await account.execute("SELECT event_type, payload FROM outbox WHERE key = :i", i=account_id)
    assert [event_type for event_type, _ in rows] == [AccountEvent.DELETED]
    payload = unpack(envelope_pb2.EventEnvelope.FromString(rows[0][1]), account_events_pb2.AccountDeleted)
    assert payload.account_id == account_id
    # Every sign-in ended: the access token, the refresh token and the password no longer work.
    for refused in (
        account.stub.GetMe(account_pb2.GetMeRequest(), metadata=who),
        account.stub.RefreshToken(
            account_pb2.RefreshTokenRequest(refresh_token=registered.tokens.refresh_token)
        ),
        account.stub.Login(account_pb2.LoginRequest(email=email, password=PASSWORD)),
        account.stub.Login(account_pb2.LoginRequest(email=stored_email, password=PASSWORD)),
    ):
        assert (await rpc_error(refused)).code() == grpc.StatusCode.UNAUTHENTICATED
    # The e-mail may register again, as a new account.
    again = await register(account.stub, email=email)
    assert again.account.id != account_id
    # The services that look recipients up find no deleted account.
    service = Caller(account_id="", role=SERVICE)
    found = await account.app.service.batch_get(service, ids=[again.account.id, account_id])
    assert [a.email for a in found] == [email]


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("not the password", "is not correct"),
        ("", "is required"),
        ("x" * 1025, "is too long"),
        ("\x00' OR 1=1 --", "is not correct"),
    ],
)
async def test_a_wrong_missing_oversized_or_hostile_password_changes_nothing(account, password, message):
    email = unique_email()
    _, who = await registered_with_address(account, email)
    before = await account.execute("SELECT email, name, password_hash FROM accounts")

    error = await rpc_error(delete(account, who, password))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    [violation] = parse_rpc_error(error).violations
    assert (violation.field, violation.description) == ("password", message)
    assert await account.execute("SELECT email, name, password_hash FROM accounts") == before
    assert (
        len((await account.stub.ListAddresses(account_pb2.ListAddressesRequest(), metadata=who)).addresses)
        == 1
    )
    assert (
        await account.execute("SELECT event_type FROM outbox WHERE event_type = :t", t=AccountEvent.DELETED)
        == []
    )


async def test_wrong_passwords_are_throttled_like_a_sign_in(account):
    _, who = await registered_with_address(account, unique_email())
    codes = [
        (await rpc_error(delete(account, who, "not the password"))).code()
        for _ in range(account.settings.login_max_failures + 1)
    ]

    assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert set(codes[:-1]) == {grpc.StatusCode.INVALID_ARGUMENT}


async def test_an_unauthenticated_caller_may_not_delete(account):
    await registered_with_address(account, unique_email())

    for who in ([], bearer("not-a-token")):
        assert (await rpc_error(delete(account, who))).code() == grpc.StatusCode.UNAUTHENTICATED
    [(deleted,)] = await account.execute("SELECT count(*) FROM accounts WHERE deleted_at IS NOT NULL")
    assert deleted == 0


async def test_a_second_call_is_refused_and_stages_nothing_more(account):
    registered, who = await registered_with_address(account, unique_email())
    await delete(account, who)

    second = await rpc_error(delete(account, who))
    # Even with a token that escaped the cut-off (a caller made up in process), the account is gone.
    caller = Caller(account_id=registered.account.id, role=CUSTOMER)
    with pytest.raises(NotFound):
        await account.app.erasure.delete_my_account(caller, password=PASSWORD)

    assert second.code() == grpc.StatusCode.UNAUTHENTICATED
    rows = await account.execute("SELECT count(*) FROM outbox WHERE event_type = :t", t=AccountEvent.DELETED)
    assert rows == [(1,)]
