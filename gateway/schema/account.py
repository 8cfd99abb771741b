"""Accounts and sign-in: register, login, refresh-token rotation, logout, profile, roles, and
getting back in with a password reset."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

from ecommerce.account.v1 import account_pb2
from ecommerce.order.v1 import order_pb2
from gateway import clients
from gateway.context import Context, Info
from gateway.read_models import to_datetime
from gateway.schema.address import Address, saved_addresses
from gateway.schema.common import After, Connection, First, connection_from, paged


@strawberry.enum(description="What an account may do.")
class Role(Enum):
    CUSTOMER = strawberry.enum_value("CUSTOMER", description="Shops and sees its own orders.")
    ADMIN = strawberry.enum_value("ADMIN", description="Manages the catalog, orders and accounts.")


ROLE_FROM_PROTO = {account_pb2.ROLE_CUSTOMER: Role.CUSTOMER, account_pb2.ROLE_ADMIN: Role.ADMIN}
ROLE_TO_PROTO = {v: k for k, v in ROLE_FROM_PROTO.items()}


@strawberry.type(description="A person who can sign in.")
class Account:
    id: strawberry.ID = strawberry.field(description="Account id (UUID).")
    email: str = strawberry.field(description="Sign-in e-mail, lower case.")
    name: str = strawberry.field(description="Display name.")
    role: Role = strawberry.field(description="What the account may do.")
    created_at: datetime = strawberry.field(description="When the account was registered.")
    updated_at: datetime = strawberry.field(description="When the account last changed.")
    email_verified: bool = strawberry.field(
        description="True once the owner followed a verification (or password-reset) link sent to `email`."
    )

    @strawberry.field(
        description="The account's saved addresses, the default first. Readable by the account itself "
        "only: FORBIDDEN for anyone else's."
    )
    async def addresses(self, info: Info) -> list[Address]:
        return await saved_addresses(info.context, str(self.id))

    @strawberry.field(
        description="The account's default address; null when it has none. The account's own only."
    )
    async def default_address(self, info: Info) -> Address | None:
        saved = await saved_addresses(info.context, str(self.id))
        return next((a for a in saved if a.is_default), None)

    @classmethod
    def from_proto(cls, message: account_pb2.Account) -> Account:
        return cls(
            id=strawberry.ID(message.id),
            email=message.email,
            name=message.name,
            role=ROLE_FROM_PROTO.get(message.role, Role.CUSTOMER),
            created_at=to_datetime(message.created_at),
            updated_at=to_datetime(message.updated_at),
            email_verified=message.email_verified,
        )


@strawberry.type(description="A signed-in session: the account and its tokens.")
class AuthPayload:
    account: Account = strawberry.field(description="The signed-in account.")
    access_token: str = strawberry.field(
        description="JWT for `Authorization: Bearer`; valid for `expiresIn` seconds. Empty from `register` "
        "when the shop requires e-mail verification: sign in with `login`."
    )
    refresh_token: str = strawberry.field(
        description="Single-use token for `refreshToken`; every use returns a new one. Empty when "
        "`accessToken` is."
    )
    expires_in: int = strawberry.field(description="Lifetime of the access token in seconds.")

    @classmethod
    def from_proto(cls, account: account_pb2.Account, tokens: account_pb2.TokenPair) -> AuthPayload:
        return cls(
            account=Account.from_proto(account),
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_in=tokens.expires_in,
        )


@strawberry.input(description="A new customer account.")
class RegisterInput:
    name: str = strawberry.field(description="Display name, 1 to 100 characters.")
    email: str = strawberry.field(description="A valid e-mail address; stored in lower case.")
    password: str = strawberry.field(description="8 to 72 bytes in UTF-8.")


@strawberry.type
class AccountQuery:
    @strawberry.field(description="The signed-in account. UNAUTHENTICATED without a valid token.")
    async def me(self, info: Info) -> Account:
        ctx = info.context
        ctx.require_caller()
        response = await ctx.call(ctx.services.account.GetMe, account_pb2.GetMeRequest())
        return Account.from_proto(response.account)

    @strawberry.field(description="Every account, oldest first. ADMIN only.")
    async def accounts(
        self,
        info: Info,
        first: First = 20,
        after: After = None,
    ) -> Connection[Account]:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.account.ListAccounts,
            paged(account_pb2.ListAccountsRequest(), first, after),
        )
        return connection_from(response, response.accounts, Account.from_proto)


@strawberry.type
class AccountMutation:
    @strawberry.mutation(
        description="Create a CUSTOMER account and sign it in. CONFLICT when the e-mail is taken. When the "
        "shop requires e-mail verification, the answer is the same whether or not the e-mail is taken: the "
        "account (unverified) with empty tokens; a verification link goes to a new address, and the owner "
        "of a taken one is told someone tried. Sign in with `login`; checking out waits for the link."
    )
    async def register(self, info: Info, input: RegisterInput) -> AuthPayload:
        ctx = info.context
        response = await ctx.call(
            ctx.services.account.Register,
            account_pb2.RegisterRequest(email=input.email, name=input.name, password=input.password),
        )
        return AuthPayload.from_proto(response.account, response.tokens)

    @strawberry.mutation(
        description="Sign in. An unknown e-mail and a wrong password give the same UNAUTHENTICATED error; "
        "repeated failures for one e-mail answer RATE_LIMITED."
    )
    async def login(
        self,
        info: Info,
        email: Annotated[str, strawberry.argument(description="The account's e-mail.")],
        password: Annotated[str, strawberry.argument(description="The account's password.")],
        cart_token: Annotated[
            str | None,
            strawberry.argument(
                description="A guest cart to take into the account's cart once signed in (its lines are "
                "added, the guest cart goes). An unknown token is NOT_FOUND, after the sign-in."
            ),
        ] = None,
    ) -> AuthPayload:
        ctx = info.context
        response = await ctx.call(
            ctx.services.account.Login, account_pb2.LoginRequest(email=email, password=password)
        )
        if cart_token:
            await merge_cart(ctx, cart_token, response.tokens.access_token)
        return AuthPayload.from_proto(response.account, response.tokens)

    @strawberry.mutation(
        description="Exchange a refresh token for new tokens. Each refresh token works once; presenting a "
        "used one again revokes every token of that sign-in."
    )
    async def refresh_token(
        self,
        info: Info,
        refresh_token: Annotated[str, strawberry.argument(description="The current refresh token.")],
    ) -> AuthPayload:
        ctx = info.context
        response = await ctx.call(
            ctx.services.account.RefreshToken, account_pb2.RefreshTokenRequest(refresh_token=refresh_token)
        )
        return AuthPayload.from_proto(response.account, response.tokens)

    @strawberry.mutation(
        description="End a sign-in: revokes the refresh token's session and, when an access token is sent, "
        "that access token too."
    )
    async def logout(
        self,
        info: Info,
        refresh_token: Annotated[str, strawberry.argument(description="The session's refresh token.")],
    ) -> bool:
        ctx = info.context
        await ctx.call(ctx.services.account.Logout, account_pb2.LogoutRequest(refresh_token=refresh_token))
        return True

    @strawberry.mutation(description="Change the signed-in account's display name.")
    async def update_profile(
        self,
        info: Info,
        name: Annotated[str, strawberry.argument(description="New display name, 1 to 100 characters.")],
    ) -> Account:
        ctx = info.context
        ctx.require_caller()
        response = await ctx.call(
            ctx.services.account.UpdateProfile, account_pb2.UpdateProfileRequest(name=name)
        )
        return Account.from_proto(response.account)

    @strawberry.mutation(
        description="Change the signed-in account's password; every other sign-in of the account ends."
    )
    async def change_password(
        self,
        info: Info,
        current_password: Annotated[str, strawberry.argument(description="The password in use now.")],
        new_password: Annotated[str, strawberry.argument(description="The new password, 8 to 72 bytes.")],
    ) -> bool:
        ctx = info.context
        ctx.require_caller()
        await ctx.call(
            ctx.services.account.ChangePassword,
            account_pb2.ChangePasswordRequest(current_password=current_password, new_password=new_password),
        )
        return True

    @strawberry.mutation(
        description="Delete the signed-in account once its password is confirmed: its personal data "
        "is erased in every service and every sign-in ends; its orders stay, without the personal "
        "data, and its e-mail may register again."
    )
    async def delete_my_account(
        self,
        info: Info,
        password: Annotated[str, strawberry.argument(description="The account's password.")],
    ) -> bool:
        ctx = info.context
        ctx.require_caller()
        await ctx.call(
            ctx.services.account.DeleteMyAccount, account_pb2.DeleteMyAccountRequest(password=password)
        )
        return True

    @strawberry.mutation(description="Make an account a CUSTOMER or an ADMIN. ADMIN only.")
    async def set_account_role(
        self,
        info: Info,
        account_id: Annotated[strawberry.ID, strawberry.argument(description="The account to change.")],
        role: Annotated[Role, strawberry.argument(description="Its new role.")],
    ) -> Account:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.account.SetRole,
            account_pb2.SetRoleRequest(account_id=str(account_id), role=ROLE_TO_PROTO[role]),
        )
        return Account.from_proto(response.account)

    @strawberry.mutation(
        description="Ask for a password-reset link. Always true: the link is e-mailed only when an "
        "account has this e-mail, and the answer is the same, in about the same time, either way. The "
        "link works once, for 30 minutes. RATE_LIMITED when this e-mail or this client asked too often; "
        "BAD_USER_INPUT for a malformed e-mail."
    )
    async def request_password_reset(
        self,
        info: Info,
        email: Annotated[str, strawberry.argument(description="The e-mail of the account.")],
    ) -> bool:
        ctx = info.context
        await ctx.call(
            ctx.services.account.RequestPasswordReset, account_pb2.RequestPasswordResetRequest(email=email)
        )
        return True

    @strawberry.mutation(
        description="Set a new password with the token of an e-mailed reset link, and sign in. Every other "
        "session of the account ends: its refresh tokens are revoked and its access tokens refused. "
        "BAD_USER_INPUT (field `token`) for a used, expired or unknown token alike, and (field "
        "`newPassword`) for a password outside 8-72 bytes."
    )
    async def reset_password(
        self,
        info: Info,
        token: Annotated[str, strawberry.argument(description="The `token` parameter of the e-mailed link.")],
        new_password: Annotated[str, strawberry.argument(description="The new password, 8 to 72 bytes.")],
    ) -> AuthPayload:
        ctx = info.context
        response = await ctx.call(
            ctx.services.account.ResetPassword,
            account_pb2.ResetPasswordRequest(token=token, new_password=new_password),
        )
        return AuthPayload.from_proto(response.account, response.tokens)

    @strawberry.mutation(
        description="E-mail the signed-in account a link that verifies its address; true, and nothing sent, "
        "when it is verified already. The link works once, for 7 days. RATE_LIMITED when asked too often."
    )
    async def request_email_verification(self, info: Info) -> bool:
        ctx = info.context
        ctx.require_caller()
        await ctx.call(
            ctx.services.account.RequestEmailVerification, account_pb2.RequestEmailVerificationRequest()
        )
        return True

    @strawberry.mutation(
        description="Verify the address with the token of an e-mailed link; needs no sign-in. Access tokens "
        "issued before are refused (refresh them to check out). BAD_USER_INPUT (field `token`) for a used, "
        "expired or unknown token alike."
    )
    async def verify_email(
        self,
        info: Info,
        token: Annotated[str, strawberry.argument(description="The `token` parameter of the e-mailed link.")],
    ) -> Account:
        ctx = info.context
        response = await ctx.call(
            ctx.services.account.VerifyEmail, account_pb2.VerifyEmailRequest(token=token)
        )
        return Account.from_proto(response.account)


async def merge_cart(ctx: Context, cart_token: str, access_token: str) -> None:
    """The guest cart taken into the account's cart, as the account just signed in."""
    metadata = [item for item in ctx.metadata() if item[0] != "authorization"]
    metadata.append(("authorization", f"Bearer {access_token}"))
    await clients.call(
        ctx.services.order.MergeCart,
        order_pb2.MergeCartRequest(cart_token=cart_token),
        metadata=metadata,
        timeout=ctx.settings.grpc_timeout,
    )
