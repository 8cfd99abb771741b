"""`python -m catalog`: the catalog service, its inventory consumer and the reservation sweeper."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog import consumers, grpc_api
from catalog.cache import CatalogCache
from catalog.inventory import Inventory
from catalog.models import inbox, outbox
from catalog.seed import CATEGORIES, PRODUCTS
from catalog.service import CatalogService, SeedResult
from catalog.settings import CatalogSettings
from servicekit.auth import Authenticator, JwksFetcher
from servicekit.inbox import EventConsumer
from servicekit.logging import configure_service_logging
from servicekit.runtime import ServiceRuntime, serve

CONSUMER_NAME = "catalog"


@dataclass
class CatalogApp:
    runtime: ServiceRuntime
    service: CatalogService
    inventory: Inventory
    cache: CatalogCache
    consumer: EventConsumer
    servicer: grpc_api.CatalogServicer
    authenticator: Authenticator

    def start_background(self) -> None:
        """The loops next to the server: saga commands in, expired reservations out."""
        runtime = self.runtime

        async def consume() -> None:
            await runtime.wait_producer()  # dead letters go out through it
            await self.consumer.run()

        async def sweep() -> None:
            await self.inventory.run_sweeper(runtime.settings.sweeper_interval)  # type: ignore[attr-defined]

        runtime.spawn(consume, "inventory-commands")
        runtime.spawn(sweep, "reservation-sweeper")


def build(settings: CatalogSettings, *, jwks: JwksFetcher | None = None) -> CatalogApp:
    """The service wired to its resources; `jwks` replaces the account service as the key source."""
    runtime = ServiceRuntime(settings, "catalog", outbox_table=outbox)
    assert runtime.outbox is not None
    cache = CatalogCache(runtime.redis, ttl=settings.cache_ttl)
    service = CatalogService(
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        cache=cache,
        cursor_secret=settings.cursor_secret,
        currency=settings.currency,
        low_stock_threshold=settings.low_stock_threshold,
        search_similarity_threshold=settings.search_similarity_threshold,
    )
    inventory = Inventory(
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        cache=cache,
        reservation_ttl=settings.reservation_ttl,
        sweeper_batch_size=settings.sweeper_batch_size,
    )
    consumer = EventConsumer(
        name=CONSUMER_NAME,
        topics=list(consumers.TOPICS),
        handlers=consumers.handlers(inventory),
        sessions=runtime.sessions,
        inbox=inbox,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        dead_letters=runtime.producer,
        max_attempts=settings.consumer_max_attempts,
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )
    return CatalogApp(
        runtime,
        service,
        inventory,
        cache,
        consumer,
        grpc_api.CatalogServicer(service),
        runtime.authenticator(jwks),
    )


async def seed(*, only_if_empty: bool = False, **overrides: Any) -> SeedResult | None:
    """`ecommerce seed`: load the demo catalog (idempotent). None when skipped because not empty."""
    app = build(CatalogSettings(**overrides))
    try:
        if only_if_empty and not await app.service.is_empty():
            return None
        return await app.service.seed(CATEGORIES, PRODUCTS)
    finally:
        await app.runtime.close()


async def main(settings: CatalogSettings | None = None) -> None:
    settings = settings or CatalogSettings()
    configure_service_logging("catalog", settings)
    app = build(settings)
    await serve(
        app.runtime,
        [grpc_api.registration(app.servicer)],
        [grpc_api.SERVICE_NAME],
        authenticator=app.authenticator,
        start_background=app.start_background,
    )


if __name__ == "__main__":
    from servicekit.runtime import run

    run(main())
