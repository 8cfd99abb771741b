from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servicekit.settings import Port, ServiceSettings


class OrderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ORDER_", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/order"
    grpc_port: Port = 50053
    metrics_port: Port = 9104

    step_deadline_seconds: float = Field(
        10.0, gt=0, le=3600, description="How long a saga step waits for its answer before re-sending."
    )
    step_retry_budget: int = Field(
        3, ge=0, le=100, description="Re-sends of a step's command before the saga compensates."
    )
    payment_retry_delay_seconds: float = Field(
        2.0, gt=0, le=600, description="First pause after a retryable payment failure; doubles each time."
    )
    saga_tick_interval: float = Field(
        1.0, gt=0, le=60, description="How often the saga timer looks for passed deadlines."
    )
    saga_tick_batch: int = Field(100, ge=1, le=10_000, description="Sagas handled per timer transaction.")
    max_lines: int = Field(50, ge=1, le=100, description="Lines per order (after merging duplicates).")
    max_quantity: int = Field(1000, ge=1, description="Units per line.")
    cart_ttl: int = Field(
        30 * 24 * 3600,
        ge=60,
        description="Seconds a cart left alone lives (ORDER_CART_TTL); default 30 days.",
    )
    prices_include_tax: bool = Field(
        False, description="Whether catalog prices already include the destination's tax."
    )
    max_cart_lines: int = Field(100, ge=1, le=1000, description="Lines per cart.")
    peer_timeout: float = Field(
        5.0, gt=0, le=60, description="Deadline of the calls to catalog and payment while placing an order."
    )
