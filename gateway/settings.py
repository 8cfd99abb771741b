from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from gateway.forwarded import parse_networks
from servicekit.settings import PlatformSettings, Port


class GatewaySettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: Port = 8000
    metrics_port: Port = 9101
    grpc_timeout: float = Field(5.0, gt=0, description="Deadline of every gRPC call, in seconds.")
    max_depth: int = Field(10, ge=1)
    max_aliases: int = Field(15, ge=1)
    max_tokens: int = Field(2000, ge=10)
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024, description="Largest accepted request body.")
    jwks_min_refresh_interval: float = Field(5.0, ge=0)
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Browser origins allowed to call the gateway, comma-separated "
        "(`https://shop.example.com,https://admin.example.com`), or `*` for any origin without "
        "credentials. None by default: no cross-origin answers.",
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="CIDRs of the proxies (an Ingress controller) whose `X-Forwarded-For` names the "
        "client, comma-separated (`10.0.0.0/8,fd00::/8`). None by default: the header is ignored.",
    )
    status_timeout: float = Field(
        2.0, gt=0, le=30, description="Time bound of each /status check, in seconds."
    )

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
    persisted_queries_max_bytes: int = Field(
        16 * 1024,
        ge=256,
        description="Largest document kept as an automatically persisted query; a larger one still runs.",
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

    # -- the response cache and HTTP caching (docs/caching.md) ----------------------------------
    response_cache: bool = Field(
        True, description="Answer public catalog reads from the response cache; false executes every one."
    )
    response_cache_max_bytes: int = Field(
        32 * 1024 * 1024, ge=0, description="Memory the response cache of each gateway process may use."
    )
    response_cache_ttl: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Seconds a cached answer is kept at most, even unchanged: a safety net for a change "
        "that was never published.",
    )
    http_max_age: int = Field(
        1, ge=0, le=60, description="`max-age` of public catalog answers to GET, for browsers and CDNs."
    )
    http_stale_while_revalidate: int = Field(
        5, ge=0, le=600, description="`stale-while-revalidate` of public catalog answers to GET."
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str | list | tuple):
            return tuple(str(network) for network in parse_networks(value))
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            return value
        origins = tuple(value)
        if "*" in origins and len(origins) > 1:
            raise ValueError("'*' allows every origin: give it alone or list the origins")
        for origin in origins:
            if origin != "*" and not _is_origin(origin):
                raise ValueError(f"{origin[:100]!r} is not an origin such as https://shop.example.com")
        return origins


def _is_origin(value: str) -> bool:
    """scheme://host[:port] as a browser sends it in `Origin`: no path, query or credentials."""
    if (
        not isinstance(value, str)
        or len(value) > 300
        or not value.isascii()
        or any(c.isspace() for c in value)
    ):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not parts.path
        and not parts.query
        and not parts.fragment
        and "@" not in parts.netloc
        and value == f"{parts.scheme}://{parts.netloc}"
    )
