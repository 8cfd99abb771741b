"""The address book: an account's saved postal addresses, and the one a checkout names by id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypedDict

import strawberry

from ecommerce.account.v1 import account_pb2
from ecommerce.order.v1 import order_pb2
from gateway.context import Context, Info
from gateway.errors import ApiError
from gateway.read_models import to_datetime
from servicekit.postal import address_fields

AddressId = Annotated[strawberry.ID, strawberry.argument(description="One of the caller's addresses.")]


@strawberry.type(description="A saved postal address of an account.")
class Address:
    id: strawberry.ID = strawberry.field(description="Address id (UUID).")
    name: str = strawberry.field(description="The recipient.")
    line1: str = strawberry.field(description="Street and number.")
    line2: str | None = strawberry.field(description="More of the address, if any.")
    city: str = strawberry.field(description="City or town.")
    region: str | None = strawberry.field(description="State, province or county, if any.")
    postal_code: str = strawberry.field(description="Postal code.")
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 country code, e.g. DE.")
    is_default: bool = strawberry.field(description="True for the account's default address.")
    created_at: datetime = strawberry.field(description="When it was saved.")
    updated_at: datetime = strawberry.field(description="When it last changed.")

    @classmethod
    def from_proto(cls, message: account_pb2.Address) -> Address:
        return cls(
            id=strawberry.ID(message.id),
            **postal_fields(message.fields),
            is_default=message.is_default,
            created_at=to_datetime(message.created_at),
            updated_at=to_datetime(message.updated_at),
        )


# The address book's fields and an order's copy of them share their names.
PostalMessage = account_pb2.AddressFields | order_pb2.ShippingAddress


class PostalFields(TypedDict):
    name: str
    line1: str
    line2: str | None
    city: str
    region: str | None
    postal_code: str
    country: str


def postal_fields(message: PostalMessage) -> PostalFields:
    """The seven fields of a postal address, as saved in the address book or copied into an order;
    the optional ones None when empty."""
    return PostalFields(
        name=message.name,
        line1=message.line1,
        line2=message.line2 or None,
        city=message.city,
        region=message.region or None,
        postal_code=message.postal_code,
        country=message.country,
    )


@strawberry.input(description="A postal address to save.")
class AddressInput:
    name: str = strawberry.field(description="The recipient, 1 to 100 characters.")
    line1: str = strawberry.field(description="Street and number, at most 200 characters.")
    city: str = strawberry.field(description="City or town, at most 100 characters.")
    postal_code: str = strawberry.field(description="Postal code, at most 20 characters.")
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 country code, e.g. DE.")
    line2: str | None = strawberry.field(default=None, description="More of the address, optional.")
    region: str | None = strawberry.field(default=None, description="State, province or county, optional.")

    def to_proto(self) -> account_pb2.AddressFields:
        return account_pb2.AddressFields(**address_fields(self))


async def saved_addresses(ctx: Context, account_id: str) -> list[Address]:
    """The account's addresses, for the account itself only."""
    caller = ctx.require_caller()
    if caller.account_id != account_id:
        raise ApiError("only the account itself may read its addresses", "FORBIDDEN")
    response = await ctx.call(ctx.services.account.ListAddresses, account_pb2.ListAddressesRequest())
    return [Address.from_proto(a) for a in response.addresses]


async def saved_address(ctx: Context, address_id: str) -> account_pb2.Address:
    """One of the caller's addresses; NOT_FOUND for an unknown id and another account's alike."""
    ctx.require_caller()
    response = await ctx.call(
        ctx.services.account.GetAddress, account_pb2.GetAddressRequest(address_id=address_id)
    )
    return response.address


@strawberry.type
class AddressMutation:
    @strawberry.mutation(
        description="Save an address for the signed-in account; the first becomes the default. At most 20: "
        "CONFLICT past that. BAD_USER_INPUT names the field (`input.postalCode`, ...)."
    )
    async def add_address(
        self, info: Info, input: Annotated[AddressInput, strawberry.argument(description="The address.")]
    ) -> Address:
        ctx = info.context
        ctx.require_caller()
        response = await ctx.call(
            ctx.services.account.AddAddress, account_pb2.AddAddressRequest(fields=input.to_proto())
        )
        return Address.from_proto(response.address)

    @strawberry.mutation(
        description="Replace one of the caller's addresses. NOT_FOUND for an unknown id and another "
        "account's alike."
    )
    async def update_address(
        self,
        info: Info,
        id: AddressId,
        input: Annotated[AddressInput, strawberry.argument(description="The address as it is to be.")],
    ) -> Address:
        ctx = info.context
        ctx.require_caller()
        response = await ctx.call(
            ctx.services.account.UpdateAddress,
            account_pb2.UpdateAddressRequest(address_id=str(id), fields=input.to_proto()),
        )
        return Address.from_proto(response.address)

    @strawberry.mutation(
        description="Delete one of the caller's addresses; when it was the default, the oldest remaining "
        "one becomes the default. NOT_FOUND for an unknown id and another account's alike."
    )
    async def delete_address(self, info: Info, id: AddressId) -> bool:
        ctx = info.context
        ctx.require_caller()
        await ctx.call(
            ctx.services.account.DeleteAddress, account_pb2.DeleteAddressRequest(address_id=str(id))
        )
        return True

    @strawberry.mutation(
        description="Make one of the caller's addresses the default. NOT_FOUND for an unknown id and another "
        "account's alike."
    )
    async def set_default_address(self, info: Info, id: AddressId) -> Address:
        ctx = info.context
        ctx.require_caller()
        response = await ctx.call(
            ctx.services.account.SetDefaultAddress, account_pb2.SetDefaultAddressRequest(address_id=str(id))
        )
        return Address.from_proto(response.address)
