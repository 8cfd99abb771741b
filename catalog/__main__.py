"""`python -m catalog`: the catalog service, its inventory consumer and the reservation sweeper."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog import consumers, grpc_api
from catalog.cache import CatalogCache
from catalog.inventory import Inventory
from catalog.models import inbox, outbox
from catalog.seed import CATEGORIES, PRODUCTS
from catalog.seeding import SeedResult
from catalog.service import CatalogService
from catalog.settings import CatalogSettings
from catalog.stock_levels import StockLevels
from catalog.variants import VariantService
from servicekit.app import Background, ServiceApp, service_main
from servicekit.auth import JwksFetcher
from servicekit.cursor import CursorCodec
from servicekit.runtime import ServiceRuntime

CONSUMER_NAME = "catalog"


@dataclass(kw_only=True)
class CatalogApp(ServiceApp):
    service: CatalogService
    inventory: Inventory
    cache: CatalogCache


def build(settings: CatalogSettings, *, jwks: JwksFetcher | None = None) -> CatalogApp:
    """The service wired to its resources; `jwks` replaces the account service as the key source."""
    runtime = ServiceRuntime(settings, "catalog", outbox_table=outbox, inbox_table=inbox)
    assert runtime.outbox is not None
    cache = CatalogCache(runtime.cache_redis, ttl=settings.cache_ttl)
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
    variants = VariantService(sessions=runtime.sessions, outbox=runtime.outbox, cache=cache)
    stock_levels = StockLevels(
        sessions=runtime.sessions, cursors=CursorCodec(settings.cursor_secret, purpose="low-stock")
    )
    return CatalogApp(
        runtime=runtime,
        registration=grpc_api.registration(grpc_api.CatalogServicer(service, variants, stock_levels)),
        service_name=grpc_api.SERVICE_NAME,
        authenticator=runtime.authenticator(jwks),
        consumers=[runtime.consumer(CONSUMER_NAME, consumers.TOPICS, consumers.handlers(inventory))],
        background=[
            Background("reservation-sweeper", lambda: inventory.run_sweeper(settings.sweeper_interval))
        ],
        service=service,
        inventory=inventory,
        cache=cache,
    )


async def seed(*, only_if_empty: bool = False, **overrides: Any) -> SeedResult | None:
    """`ecommerce seed`: load the demo catalog (idempotent). None when skipped because not empty."""
    app = build(CatalogSettings(**overrides))
    try:
        if only_if_empty and not await app.service.is_empty():
            return None
        return await app.service.seed(CATEGORIES, PRODUCTS)
    finally:
        await app.close()


main = service_main("catalog", CatalogSettings, build)

if __name__ == "__main__":
    from servicekit.runtime import run

    run(main())
