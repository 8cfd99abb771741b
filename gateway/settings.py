from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servicekit.settings import PlatformSettings


class GatewaySettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    metrics_port: int = Field(9101, ge=0, le=65535)
    grpc_timeout: float = Field(5.0, gt=0, description="Deadline of every gRPC call, in seconds.")
    max_depth: int = Field(10, ge=1)
    max_aliases: int = Field(15, ge=1)
    max_tokens: int = Field(2000, ge=10)
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024, description="Largest accepted request body.")
    jwks_min_refresh_interval: float = Field(5.0, ge=0)
