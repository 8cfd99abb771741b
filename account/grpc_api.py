"""AccountService servicer: proto in, use case, proto out. Errors are mapped by the interceptor."""

from __future__ import annotations

import grpc
import orjson

from account.addresses import AddressBook
from account.convert import (
    ROLE_FROM_PROTO,
    account_to_proto,
    address_to_proto,
    tokens_to_proto,
)
from account.erasure import AccountErasure
from account.recovery import AccountRecovery
from account.service import AccountService
from ecommerce.account.v1 import account_pb2 as pb
from ecommerce.account.v1 import account_pb2_grpc
from servicekit.context import current_caller, current_client_address
from servicekit.grpc_server import Registration
from servicekit.postal import address_fields

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AccountService"].full_name


class AccountServicer(account_pb2_grpc.AccountServiceServicer):
    def __init__(
        self,
        service: AccountService,
        recovery: AccountRecovery,
        addresses: AddressBook,
        erasure: AccountErasure,
    ) -> None:
        self.service = service
        self.recovery = recovery
        self.addresses = addresses
        self.erasure = erasure

    async def Register(
        self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterResponse:
        session = await self.service.register(
            email=request.email, name=request.name, password=request.password
        )
        return pb.RegisterResponse(account=account_to_proto(session.account), tokens=tokens_to_proto(session))

    async def Login(self, request: pb.LoginRequest, context: grpc.aio.ServicerContext) -> pb.LoginResponse:
        session = await self.service.login(
            email=request.email, password=request.password, client=current_client_address()
        )
        return pb.LoginResponse(account=account_to_proto(session.account), tokens=tokens_to_proto(session))

    async def RefreshToken(
        self, request: pb.RefreshTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.RefreshTokenResponse:
        session = await self.service.refresh(refresh_token=request.refresh_token)
        return pb.RefreshTokenResponse(
            account=account_to_proto(session.account), tokens=tokens_to_proto(session)
        )

    async def Logout(self, request: pb.LogoutRequest, context: grpc.aio.ServicerContext) -> pb.LogoutResponse:
        await self.service.logout(current_caller(), refresh_token=request.refresh_token)
        return pb.LogoutResponse()

    async def GetMe(self, request: pb.GetMeRequest, context: grpc.aio.ServicerContext) -> pb.GetMeResponse:
        account = await self.service.get_me(current_caller())
        return pb.GetMeResponse(account=account_to_proto(account))

    async def UpdateProfile(
        self, request: pb.UpdateProfileRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateProfileResponse:
        account = await self.service.update_profile(current_caller(), name=request.name)
        return pb.UpdateProfileResponse(account=account_to_proto(account))

    async def ChangePassword(
        self, request: pb.ChangePasswordRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChangePasswordResponse:
        await self.service.change_password(
            current_caller(),
            current_password=request.current_password,
            new_password=request.new_password,
            client=current_client_address(),
        )
        return pb.ChangePasswordResponse()

    async def ListAccounts(
        self, request: pb.ListAccountsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAccountsResponse:
        page = await self.service.list_accounts(
            current_caller(), page_size=request.page_size or 20, page_token=request.page_token
        )
        return pb.ListAccountsResponse(
            accounts=[account_to_proto(a) for a in page.items],
            cursors=page.cursors,
            has_next_page=page.has_next_page,
            total_count=page.total_count,
        )

    async def SetRole(
        self, request: pb.SetRoleRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetRoleResponse:
        account = await self.service.set_role(
            current_caller(), account_id=request.account_id, role=ROLE_FROM_PROTO.get(request.role, "")
        )
        return pb.SetRoleResponse(account=account_to_proto(account))

    async def BatchGetAccounts(
        self, request: pb.BatchGetAccountsRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchGetAccountsResponse:
        accounts = await self.service.batch_get(current_caller(), ids=list(request.ids))
        return pb.BatchGetAccountsResponse(accounts=[account_to_proto(a) for a in accounts])

    async def ListAdmins(
        self, request: pb.ListAdminsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAdminsResponse:
        admins, next_page_token = await self.service.list_admins(
            current_caller(), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListAdminsResponse(
            accounts=[account_to_proto(a) for a in admins], next_page_token=next_page_token
        )

    async def GetJwks(
        self, request: pb.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetJwksResponse:
        return pb.GetJwksResponse(jwks_json=orjson.dumps(self.service.jwks()).decode())

    async def RequestPasswordReset(
        self, request: pb.RequestPasswordResetRequest, context: grpc.aio.ServicerContext
    ) -> pb.RequestPasswordResetResponse:
        await self.recovery.request_password_reset(email=request.email, client=current_client_address())
        return pb.RequestPasswordResetResponse()

    async def ResetPassword(
        self, request: pb.ResetPasswordRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResetPasswordResponse:
        session = await self.recovery.reset_password(token=request.token, new_password=request.new_password)
        return pb.ResetPasswordResponse(
            account=account_to_proto(session.account), tokens=tokens_to_proto(session)
        )

    async def RequestEmailVerification(
        self, request: pb.RequestEmailVerificationRequest, context: grpc.aio.ServicerContext
    ) -> pb.RequestEmailVerificationResponse:
        await self.recovery.request_email_verification(current_caller())
        return pb.RequestEmailVerificationResponse()

    async def VerifyEmail(
        self, request: pb.VerifyEmailRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyEmailResponse:
        account = await self.recovery.verify_email(token=request.token)
        return pb.VerifyEmailResponse(account=account_to_proto(account))

    async def ListAddresses(
        self, request: pb.ListAddressesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAddressesResponse:
        addresses = await self.addresses.saved(current_caller())
        return pb.ListAddressesResponse(addresses=[address_to_proto(a) for a in addresses])

    async def GetAddress(
        self, request: pb.GetAddressRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAddressResponse:
        address = await self.addresses.get(current_caller(), request.address_id)
        return pb.GetAddressResponse(address=address_to_proto(address))

    async def AddAddress(
        self, request: pb.AddAddressRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddAddressResponse:
        address = await self.addresses.add(current_caller(), address_fields(request.fields))
        return pb.AddAddressResponse(address=address_to_proto(address))

    async def UpdateAddress(
        self, request: pb.UpdateAddressRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateAddressResponse:
        address = await self.addresses.update(
            current_caller(), request.address_id, address_fields(request.fields)
        )
        return pb.UpdateAddressResponse(address=address_to_proto(address))

    async def DeleteAddress(
        self, request: pb.DeleteAddressRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteAddressResponse:
        await self.addresses.delete(current_caller(), request.address_id)
        return pb.DeleteAddressResponse()

    async def SetDefaultAddress(
        self, request: pb.SetDefaultAddressRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetDefaultAddressResponse:
        address = await self.addresses.set_default(current_caller(), request.address_id)
        return pb.SetDefaultAddressResponse(address=address_to_proto(address))

    async def ExportMyData(
        self, request: pb.ExportMyDataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExportMyDataResponse:
        account, addresses = await self.addresses.export(current_caller())
        return pb.ExportMyDataResponse(
            account=account_to_proto(account), addresses=[address_to_proto(a) for a in addresses]
        )

    async def DeleteMyAccount(
        self, request: pb.DeleteMyAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteMyAccountResponse:
        await self.erasure.delete_my_account(
            current_caller(), password=request.password, client=current_client_address()
        )
        return pb.DeleteMyAccountResponse()


def registration(servicer: AccountServicer) -> Registration:
    return (account_pb2_grpc.add_AccountServiceServicer_to_server, servicer)
