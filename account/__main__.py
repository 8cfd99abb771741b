"""`python -m account`: the account service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from account import grpc_api
from account.addresses import AddressBook
from account.erasure import AccountErasure
from account.links import LinkPolicy
from account.models import outbox
from account.quota import RequestQuota
from account.recovery import AccountRecovery
from account.service import AccountService, LoginThrottle
from account.settings import AccountSettings
from servicekit.app import Background, ServiceApp, service_main
from servicekit.runtime import ServiceRuntime
from servicekit.security import (
    PasswordHasher,
    SigningKey,
    TokenIssuer,
    load_or_create_signing_key,
    load_signing_keys,
)


@dataclass(kw_only=True)
class AccountApp(ServiceApp):
    service: AccountService
    recovery: AccountRecovery
    addresses: AddressBook
    erasure: AccountErasure


def signing_keys(settings: AccountSettings) -> list[SigningKey]:
    """The key set: the last key signs, every key is published in the JWKS."""
    if settings.jwt_private_key is not None:
        return load_signing_keys(settings.jwt_private_key.get_secret_value().encode())
    path = settings.jwt_private_key_file
    if settings.production:
        if path is None or not path.exists():
            raise SystemExit(
                "ACCOUNT_JWT_PRIVATE_KEY or ACCOUNT_JWT_PRIVATE_KEY_FILE is required in production"
            )
        return load_signing_keys(path.read_bytes())
    path = path or settings.data_dir / "keys" / "jwt-signing.pem"
    load_or_create_signing_key(path)
    return load_signing_keys(path.read_bytes())


def build(settings: AccountSettings) -> AccountApp:
    runtime = ServiceRuntime(settings, "account", outbox_table=outbox)
    keys = signing_keys(settings)
    assert runtime.outbox is not None
    link_policy = LinkPolicy(
        shop_url=settings.shop_url,
        reset_ttl=timedelta(seconds=settings.password_reset_ttl),
        verification_ttl=timedelta(seconds=settings.email_verification_ttl),
    )
    service = AccountService(
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        hasher=PasswordHasher(rounds=settings.bcrypt_rounds),
        issuer=TokenIssuer(
            keys[-1],
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl,
        ),
        signing_keys=keys,
        throttle=LoginThrottle(
            runtime.redis,
            max_failures=settings.login_max_failures,
            window=settings.login_failure_window,
            delay=settings.login_delay,
        ),
        denylist=runtime.denylist,
        refresh_token_ttl=settings.refresh_token_ttl,
        links=link_policy,
        require_email_verification=settings.account_require_email_verification,
        cursor_secret=settings.cursor_secret,
    )

    window = settings.password_reset_window
    recovery = AccountRecovery(
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        accounts=service,
        links=link_policy,
        resets_per_email=RequestQuota(
            runtime.redis, name="reset-email", limit=settings.password_resets_per_email, window=window
        ),
        resets_per_client=RequestQuota(
            runtime.redis, name="reset-client", limit=settings.password_resets_per_client, window=window
        ),
        verifications_per_account=RequestQuota(
            runtime.redis,
            name="verify-account",
            limit=settings.email_verifications_per_account,
            window=window,
        ),
        answer_floor=settings.password_reset_answer_floor,
    )

    addresses = AddressBook(
        sessions=runtime.sessions,
        exports=RequestQuota(
            runtime.redis,
            name="export-account",
            limit=settings.data_exports_per_account,
            window=settings.data_export_window,
        ),
    )

    erasure = AccountErasure(sessions=runtime.sessions, outbox=runtime.outbox, accounts=service)

    async def own_keys() -> dict:
        return service.jwks()

    async def restore_cutoffs() -> None:
        await service.restore_cutoffs()

    return AccountApp(
        runtime=runtime,
        registration=grpc_api.registration(grpc_api.AccountServicer(service, recovery, addresses, erasure)),
        service_name=grpc_api.SERVICE_NAME,
        authenticator=runtime.authenticator(own_keys),
        background=[Background("restore-token-cutoffs", restore_cutoffs)],
        service=service,
        recovery=recovery,
        addresses=addresses,
        erasure=erasure,
    )


async def create_admin(*, email: str, name: str, password: str) -> bool:
    """`ecommerce create-admin`: create or promote an administrator directly in the database."""
    app = build(AccountSettings())
    try:
        return await app.service.create_or_promote_admin(email=email, name=name, password=password)
    finally:
        await app.close()


main = service_main("account", AccountSettings, build)

if __name__ == "__main__":
    from servicekit.runtime import run

    run(main())
