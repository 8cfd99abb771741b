"""`python -m account`: the account service."""

from __future__ import annotations

from dataclasses import dataclass

from account import grpc_api
from account.models import outbox
from account.service import AccountService, LoginThrottle
from account.settings import AccountSettings
from servicekit.app import ServiceApp, service_main
from servicekit.runtime import ServiceRuntime
from servicekit.security import PasswordHasher, SigningKey, TokenIssuer, load_or_create_signing_key


@dataclass(kw_only=True)
class AccountApp(ServiceApp):
    service: AccountService


def signing_key(settings: AccountSettings) -> SigningKey:
    if settings.jwt_private_key is not None:
        return SigningKey.from_pem(settings.jwt_private_key.get_secret_value().encode(), None)
    path = settings.jwt_private_key_file
    if settings.production:
        if path is None or not path.exists():
            raise SystemExit(
                "ACCOUNT_JWT_PRIVATE_KEY or ACCOUNT_JWT_PRIVATE_KEY_FILE is required in production"
            )
        return SigningKey.from_pem(path.read_bytes(), None)
    return load_or_create_signing_key(path or settings.data_dir / "keys" / "jwt-signing.pem")


def build(settings: AccountSettings) -> AccountApp:
    runtime = ServiceRuntime(settings, "account", outbox_table=outbox)
    key = signing_key(settings)
    assert runtime.outbox is not None
    service = AccountService(
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        hasher=PasswordHasher(rounds=settings.bcrypt_rounds),
        issuer=TokenIssuer(
            key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl,
        ),
        signing_keys=[key],
        throttle=LoginThrottle(
            runtime.redis,
            max_failures=settings.login_max_failures,
            window=settings.login_failure_window,
            delay=settings.login_delay,
        ),
        denylist=runtime.denylist,
        refresh_token_ttl=settings.refresh_token_ttl,
        cursor_secret=settings.cursor_secret,
    )

    async def own_keys() -> dict:
        return service.jwks()

    return AccountApp(
        runtime=runtime,
        registration=grpc_api.registration(grpc_api.AccountServicer(service)),
        service_name=grpc_api.SERVICE_NAME,
        authenticator=runtime.authenticator(own_keys),
        service=service,
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
