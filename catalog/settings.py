from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servicekit.settings import Port, ServiceSettings


class CatalogSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/catalog"
    grpc_port: Port = 50052
    metrics_port: Port = 9103

    currency: str = Field(
        "USD",
        min_length=3,
        max_length=3,
        description="The currency the catalog prices in: price filters given as decimals are read in it, "
        "and the demo data uses it.",
    )
    reservation_ttl: int = Field(
        900, ge=1, description="Seconds a stock reservation holds unless committed or released."
    )
    sweeper_interval: float = Field(5.0, gt=0, description="Seconds between sweeps for expired reservations.")
    sweeper_batch_size: int = Field(100, ge=1, le=10_000, description="Reservations released per sweep.")
    low_stock_threshold: int = Field(
        5, ge=0, description="Default threshold for catalog.stock_low on products created without one."
    )
    cache_ttl: int = Field(300, ge=1, description="Seconds a cached product or page lives at most.")
    search_similarity_threshold: float = Field(
        0.55,
        gt=0,
        le=1,
        description="pg_trgm word similarity a name needs to match a search word (prefixes, typos).",
    )
