"""Conversions between the account service's rows and its protobuf messages."""

from __future__ import annotations

from account import models
from account.service import Session
from ecommerce.account.v1 import account_pb2
from servicekit.postal import address_fields
from servicekit.timestamps import to_timestamp

ROLE_TO_PROTO = {"CUSTOMER": account_pb2.ROLE_CUSTOMER, "ADMIN": account_pb2.ROLE_ADMIN}
ROLE_FROM_PROTO = {v: k for k, v in ROLE_TO_PROTO.items()}


def account_to_proto(account: models.Account) -> account_pb2.Account:
    return account_pb2.Account(
        id=str(account.id),
        email=account.email,
        name=account.name,
        role=ROLE_TO_PROTO[account.role],
        created_at=to_timestamp(account.created_at),
        updated_at=to_timestamp(account.updated_at),
        email_verified=account.email_verified,
    )


def address_to_proto(address: models.Address) -> account_pb2.Address:
    return account_pb2.Address(
        id=str(address.id),
        fields=account_pb2.AddressFields(**address_fields(address)),
        is_default=address.is_default,
        created_at=to_timestamp(address.created_at),
        updated_at=to_timestamp(address.updated_at),
    )


def tokens_to_proto(session: Session) -> account_pb2.TokenPair:
    return account_pb2.TokenPair(
        access_token=session.tokens.access_token,
        refresh_token=session.tokens.refresh_token,
        expires_in=session.tokens.expires_in,
        token_type="Bearer",
    )
