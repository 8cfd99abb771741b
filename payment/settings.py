from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from servicekit.settings import Port, ServiceSettings


class PaymentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENT_", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/payment"
    grpc_port: Port = 50054
    metrics_port: Port = 9105

    provider: Literal["simulated"] = Field("simulated", description="The provider adapter to charge with.")
    provider_timeout: float = Field(5.0, gt=0, le=120, description="Seconds one provider call may take.")
    retry_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="Provider calls per operation, the first included (transient errors only).",
    )
    backoff_base: float = Field(0.2, ge=0, description="Seconds before the first retry; doubles each time.")
    backoff_max: float = Field(2.0, ge=0, description="Longest wait between two retries, in seconds.")
    breaker_failure_threshold: int = Field(
        5, ge=1, le=1000, description="Failed provider calls in a row that open the circuit breaker."
    )
    breaker_cool_down: float = Field(
        30.0, ge=0, le=3600, description="Seconds the breaker stays open before a half-open trial."
    )
    simulated_hang: float = Field(
        60.0, gt=0, description="Seconds the simulated provider sleeps for `tok_timeout`."
    )

    # The fault suite's weather (zero in normal runs): see SimulatedProvider.
    simulated_latency: float = Field(
        0.0, ge=0, le=60, description="Up to this many seconds before the simulated provider answers."
    )
    simulated_failure_rate: float = Field(
        0.0, ge=0, le=1, description="Share of simulated provider calls that fail transiently (503)."
    )

    @model_validator(mode="after")
    def _hang_outlasts_timeout(self) -> PaymentSettings:
        if self.simulated_hang <= self.provider_timeout:
            raise ValueError("simulated_hang must be longer than provider_timeout")
        if self.backoff_max < self.backoff_base:
            raise ValueError("backoff_max must not be below backoff_base")
        return self
