"""AccountService servicer: proto in, use case, proto out. Errors are mapped by the interceptor."""

from __future__ import annotations

import orjson
from google.protobuf import timestamp_pb2

from account import models
from account.service import AccountService, Session
from ecommerce.account.v1 import account_pb2, account_pb2_grpc
from servicekit.context import current_caller

ROLE_TO_PROTO = {"CUSTOMER": account_pb2.ROLE_CUSTOMER, "ADMIN": account_pb2.ROLE_ADMIN}
ROLE_FROM_PROTO = {v: k for k, v in ROLE_TO_PROTO.items()}
SERVICE_NAME = account_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name


def _timestamp(value) -> timestamp_pb2.Timestamp:  # type: ignore[no-untyped-def]
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def account_to_proto(account: models.Account) -> account_pb2.Account:
    return account_pb2.Account(
        id=str(account.id),
        email=account.email,
        name=account.name,
        role=ROLE_TO_PROTO[account.role],
        created_at=_timestamp(account.created_at),
        updated_at=_timestamp(account.updated_at),
    )


def _tokens(session: Session) -> account_pb2.TokenPair:
    return account_pb2.TokenPair(
        access_token=session.tokens.access_token,
        refresh_token=session.tokens.refresh_token,
        expires_in=session.tokens.expires_in,
        token_type="Bearer",
    )


class AccountServicer(account_pb2_grpc.AccountServiceServicer):
    def __init__(self, service: AccountService) -> None:
        self.service = service

    async def Register(self, request, context):  # type: ignore[no-untyped-def]
        session = await self.service.register(
            email=request.email, name=request.name, password=request.password
        )
        return account_pb2.RegisterResponse(
            account=account_to_proto(session.account), tokens=_tokens(session)
        )

    async def Login(self, request, context):  # type: ignore[no-untyped-def]
        session = await self.service.login(email=request.email, password=request.password)
        return account_pb2.LoginResponse(account=account_to_proto(session.account), tokens=_tokens(session))

    async def RefreshToken(self, request, context):  # type: ignore[no-untyped-def]
        session = await self.service.refresh(refresh_token=request.refresh_token)
        return account_pb2.RefreshTokenResponse(
            account=account_to_proto(session.account), tokens=_tokens(session)
        )

    async def Logout(self, request, context):  # type: ignore[no-untyped-def]
        await self.service.logout(current_caller(), refresh_token=request.refresh_token)
        return account_pb2.LogoutResponse()

    async def GetMe(self, request, context):  # type: ignore[no-untyped-def]
        account = await self.service.get_me(current_caller())
        return account_pb2.GetMeResponse(account=account_to_proto(account))

    async def UpdateProfile(self, request, context):  # type: ignore[no-untyped-def]
        account = await self.service.update_profile(current_caller(), name=request.name)
        return account_pb2.UpdateProfileResponse(account=account_to_proto(account))

    async def ChangePassword(self, request, context):  # type: ignore[no-untyped-def]
        await self.service.change_password(
            current_caller(), current_password=request.current_password, new_password=request.new_password
        )
        return account_pb2.ChangePasswordResponse()

    async def ListAccounts(self, request, context):  # type: ignore[no-untyped-def]
        page = await self.service.list_accounts(
            current_caller(), page_size=request.page_size or 20, page_token=request.page_token
        )
        return account_pb2.ListAccountsResponse(
            accounts=[account_to_proto(a) for a in page.accounts],
            cursors=page.cursors,
            has_next_page=page.has_next_page,
            total_count=page.total_count,
        )

    async def SetRole(self, request, context):  # type: ignore[no-untyped-def]
        account = await self.service.set_role(
            current_caller(), account_id=request.account_id, role=ROLE_FROM_PROTO.get(request.role, "")
        )
        return account_pb2.SetRoleResponse(account=account_to_proto(account))

    async def BatchGetAccounts(self, request, context):  # type: ignore[no-untyped-def]
        accounts = await self.service.batch_get(current_caller(), ids=list(request.ids))
        return account_pb2.BatchGetAccountsResponse(accounts=[account_to_proto(a) for a in accounts])

    async def GetJwks(self, request, context):  # type: ignore[no-untyped-def]
        return account_pb2.GetJwksResponse(jwks_json=orjson.dumps(self.service.jwks()).decode())


def registration(servicer: AccountServicer) -> tuple:
    return (account_pb2_grpc.add_AccountServiceServicer_to_server, servicer)
