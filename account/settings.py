from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from servicekit.settings import Port, ServiceSettings


class AccountSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ACCOUNT_", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/account"
    grpc_port: Port = 50051
    metrics_port: Port = 9102

    bcrypt_rounds: int = Field(12, ge=4, le=16, description="Lower it only in tests.")
    access_token_ttl: int = Field(900, ge=60, le=3600, description="Seconds.")
    refresh_token_ttl: int = Field(30 * 24 * 3600, ge=3600, description="Seconds.")
    jwt_private_key: SecretStr | None = Field(
        None, description="PEM of the RS256 signing keys: the last signs, all are published."
    )
    jwt_private_key_file: Path | None = Field(
        None,
        description="PEM file of the signing keys, the signing key last (see `ecommerce rotate-keys`); "
        "in development it is created when missing.",
    )
    login_max_failures: int = Field(
        5, ge=1, description="Failed logins per e-mail and client address before each attempt waits."
    )
    login_failure_window: int = Field(
        900, ge=1, description="Seconds a failure counts for, and the longest wait between attempts."
    )
    login_delay: float = Field(
        30.0, gt=0, description="First wait after the free failures, in seconds; doubles with each failure."
    )

    # -- password reset and e-mail verification ----------------------------------------------------
    password_reset_ttl: int = Field(1800, ge=60, le=24 * 3600, description="Seconds a reset link works.")
    email_verification_ttl: int = Field(
        7 * 24 * 3600, ge=3600, le=30 * 24 * 3600, description="Seconds a verification link works."
    )
    password_reset_window: int = Field(
        900, ge=1, description="Seconds over which reset requests are counted per e-mail and per address."
    )
    password_resets_per_email: int = Field(3, ge=1, description="Reset requests per e-mail in the window.")
    password_resets_per_client: int = Field(
        20, ge=1, description="Reset requests per client address in the window."
    )
    email_verifications_per_account: int = Field(
        3, ge=1, description="Verification e-mails one account may ask for in the reset window."
    )
    data_exports_per_account: int = Field(
        5, ge=1, description="Data exports one account may ask for in `data_export_window`."
    )
    data_export_window: int = Field(3600, ge=1, description="Seconds over which data exports are counted.")
    password_reset_answer_floor: float = Field(
        0.25,
        ge=0,
        le=5,
        description="Seconds a reset request takes at least, so that its time says nothing about the e-mail.",
    )
