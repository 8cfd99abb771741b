"""The address book: up to 20 addresses per account, one default, each readable and changeable by
its owner alone (another account's address is NOT_FOUND, as an unknown id is)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from ecommerce.account.v1 import account_pb2
from servicekit.rpc_status import parse_rpc_error
from tests.integration.account_calls import bearer, register, rpc_error

pytestmark = pytest.mark.usefixtures("clean_accounts")


def fields(**overrides: str) -> account_pb2.AddressFields:
    values = {"name": "Ada Lovelace", "line1": "12 Analytical Row", "city": "London", "postal_code": "N1 9GU"}
    values["country"] = "gb"
    values.update(overrides)
    return account_pb2.AddressFields(**values)


async def signed_in(account) -> list[tuple[str, str]]:
    return bearer((await register(account.stub)).tokens.access_token)


async def add(account, who, **overrides: str) -> account_pb2.Address:
    return (
        await account.stub.AddAddress(account_pb2.AddAddressRequest(fields=fields(**overrides)), metadata=who)
    ).address


async def listed(account, who) -> list[account_pb2.Address]:
    return list(
        (await account.stub.ListAddresses(account_pb2.ListAddressesRequest(), metadata=who)).addresses
    )


async def test_the_first_address_is_the_default_and_the_default_comes_first(account):
    who = await signed_in(account)

    first = await add(account, who, line1="1 First St")
    second = await add(account, who, line1="2 Second St")
    chosen = (
        await account.stub.SetDefaultAddress(
            account_pb2.SetDefaultAddressRequest(address_id=second.id), metadata=who
        )
    ).address

    assert first.is_default
    assert not second.is_default
    assert first.fields.country == "GB"
    assert chosen.is_default
    assert [(a.id, a.is_default) for a in await listed(account, who)] == [
        (second.id, True),
        (first.id, False),
    ]


async def test_an_address_is_updated_and_deleting_the_default_promotes_the_oldest(account):
    who = await signed_in(account)
    first = await add(account, who, line1="1 First St")
    second = await add(account, who, line1="2 Second St")
    third = await add(account, who, line1="3 Third St")

    updated = (
        await account.stub.UpdateAddress(
            account_pb2.UpdateAddressRequest(
                address_id=third.id, fields=fields(line1="33 Third St", line2="Flat 2")
            ),
            metadata=who,
        )
    ).address
    await account.stub.DeleteAddress(account_pb2.DeleteAddressRequest(address_id=first.id), metadata=who)

    assert (updated.fields.line1, updated.fields.line2) == ("33 Third St", "Flat 2")
    assert [(a.id, a.is_default) for a in await listed(account, who)] == [
        (second.id, True),
        (third.id, False),
    ]


async def test_at_most_twenty_addresses_even_when_added_at_once(account):
    who = await signed_in(account)

    results = await asyncio.gather(
        *(add(account, who, line1=f"{i} Main St") for i in range(25)), return_exceptions=True
    )

    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 5
    assert {r.code() for r in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    saved = await listed(account, who)
    assert len(saved) == 20
    assert [a.is_default for a in saved].count(True) == 1


async def test_another_accounts_address_is_not_found_for_every_operation(account):
    owner = await signed_in(account)
    stranger = await signed_in(account)
    address = await add(account, owner)

    calls = [
        account.stub.GetAddress(account_pb2.GetAddressRequest(address_id=address.id), metadata=stranger),
        account.stub.UpdateAddress(
            account_pb2.UpdateAddressRequest(address_id=address.id, fields=fields(name="Mallory")),
            metadata=stranger,
        ),
        account.stub.DeleteAddress(
            account_pb2.DeleteAddressRequest(address_id=address.id), metadata=stranger
        ),
        account.stub.SetDefaultAddress(
            account_pb2.SetDefaultAddressRequest(address_id=address.id), metadata=stranger
        ),
        account.stub.GetAddress(
            account_pb2.GetAddressRequest(address_id="00000000-0000-0000-0000-000000000000"), metadata=owner
        ),
        account.stub.GetAddress(account_pb2.GetAddressRequest(address_id="not-a-uuid"), metadata=owner),
    ]
    errors = [await rpc_error(call) for call in calls]

    assert {e.code() for e in errors} == {grpc.StatusCode.NOT_FOUND}
    assert len({e.details() for e in errors}) == 1
    [kept] = await listed(account, owner)
    assert (kept.fields.name, kept.is_default) == ("Ada Lovelace", True)
    assert await listed(account, stranger) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "input.name"),
        ({"line1": "   "}, "input.line1"),
        ({"city": "x" * 101}, "input.city"),
        ({"postal_code": "1" * 21}, "input.postal_code"),
        ({"country": "XX"}, "input.country"),
        ({"country": "GBR"}, "input.country"),
        ({"line2": "evil\x00byte"}, "input.line2"),
        ({"region": "<script>\u202e"}, "input.region"),
    ],
)
async def test_bad_input_names_the_field_and_saves_nothing(account, overrides, field):
    who = await signed_in(account)

    error = await rpc_error(add(account, who, **overrides))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert parse_rpc_error(error).violations[0].field == field
    assert await listed(account, who) == []


async def test_the_address_book_needs_a_sign_in(account):
    errors = [
        await rpc_error(account.stub.ListAddresses(account_pb2.ListAddressesRequest())),
        await rpc_error(account.stub.AddAddress(account_pb2.AddAddressRequest(fields=fields()))),
    ]

    assert {e.code() for e in errors} == {grpc.StatusCode.UNAUTHENTICATED}
    [(count,)] = await account.execute("SELECT count(*) FROM addresses")
    assert count == 0


async def test_a_data_export_holds_the_account_and_its_addresses_and_is_limited(account):
    registered = await register(account.stub)
    who = bearer(registered.tokens.access_token)
    saved = await add(account, who)
    stranger = await signed_in(account)
    await add(account, stranger, name="Someone Else")

    exported = await account.stub.ExportMyData(account_pb2.ExportMyDataRequest(), metadata=who)

    assert exported.account.email == registered.account.email
    assert [a.id for a in exported.addresses] == [saved.id]
    for _ in range(account.settings.data_exports_per_account - 1):
        await account.stub.ExportMyData(account_pb2.ExportMyDataRequest(), metadata=who)
    limited = await rpc_error(account.stub.ExportMyData(account_pb2.ExportMyDataRequest(), metadata=who))
    assert limited.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert parse_rpc_error(limited).retry_after >= 1
    anonymous = await rpc_error(account.stub.ExportMyData(account_pb2.ExportMyDataRequest()))
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
