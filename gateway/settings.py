from __future__ import annotations

from pathlib import Path

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

    # -- protection (README "Gateway limits") ---------------------------------------------------
    max_query_cost: int = Field(1000, ge=1, description="Largest static cost of one operation.")
    rate_limit_capacity: int = Field(1000, ge=1, description="Cost points in each caller's bucket.")
    rate_limit_restore_rate: float = Field(50.0, gt=0, description="Cost points restored per second.")
    max_directives_per_field: int = Field(2, ge=1, description="Directives on one field or fragment.")
    max_query_bytes: int = Field(100 * 1024, ge=256, description="Largest query string, in UTF-8 bytes.")
    batching: bool = Field(False, description="Accept a JSON list of operations in one request.")
    max_batch_operations: int = Field(10, ge=1, le=10, description="Operations in one batch, when on.")
    persisted_queries_ttl: int = Field(
        7 * 24 * 3600, ge=60, description="Seconds an automatically persisted query stays cached."
    )
    persisted_queries_only: bool = Field(
        False, description="Allowlist mode: execute only registered documents (for production)."
    )
    persisted_queries_file: Path | None = Field(
        None, description="A .graphql or .json file of documents registered when the gateway starts."
    )
    report_rpc_calls: bool = Field(
        False, description="Add `extensions.rpcCalls` (gRPC calls per method) to each answer; tests only."
    )
