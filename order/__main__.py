"""`python -m order`: the order service, its saga consumer and its saga timer."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from order import consumers, demo, erasure, grpc_api
from order.models import inbox, outbox
from order.peers import CatalogClient, PaymentClient
from order.service import OrderService, policy_from
from order.settings import OrderSettings
from order.waiting import SettledOrders
from servicekit.app import Background, ServiceApp, service_main
from servicekit.db import transaction
from servicekit.runtime import ServiceRuntime

log = logging.getLogger(__name__)

GAUGE_INTERVAL = 5.0
CART_SWEEP_INTERVAL = 300.0


@dataclass(kw_only=True)
class OrderApp(ServiceApp):
    service: OrderService


async def run_saga_timer(service: OrderService, interval: float) -> None:
    """Re-send or compensate every saga whose step deadline passed; this also resumes the
    sagas that were in flight when the process last stopped."""
    while True:
        handled = await service.resume_due_sagas()
        if handled < service.tick_batch:
            await asyncio.sleep(interval)


async def count_orders(service: OrderService) -> None:
    """Keep the orders-by-status and oldest-saga gauges current (transitions move them between counts)."""
    while True:
        try:
            await service.refresh_gauges()
        except (OSError, SQLAlchemyError) as exc:  # the database is away; the next round tries again
            log.warning("cannot count the orders for the gauges: %s", exc)
        await asyncio.sleep(GAUGE_INTERVAL)


async def sweep_carts(service: OrderService) -> None:
    """Delete the carts left alone past ORDER_CART_TTL (they are refused from then on anyway)."""
    while True:
        try:
            await service.carts.sweep_expired()
        except (OSError, SQLAlchemyError) as exc:
            log.warning("cannot sweep the expired carts: %s", exc)
        await asyncio.sleep(CART_SWEEP_INTERVAL)


def build(settings: OrderSettings) -> OrderApp:
    runtime = ServiceRuntime(settings, "order", outbox_table=outbox, inbox_table=inbox)
    assert runtime.outbox is not None
    service = OrderService(
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        catalog=CatalogClient(runtime.channel(settings.catalog_addr), timeout=settings.peer_timeout),
        payments=PaymentClient(
            runtime.channel(settings.payment_addr),
            timeout=settings.peer_timeout,
            service_token=settings.internal_service_token,
        ),
        policy=policy_from(
            settings.step_deadline_seconds, settings.step_retry_budget, settings.payment_retry_delay_seconds
        ),
        cursor_secret=settings.cursor_secret,
        settled=SettledOrders(settings.database_url),
        max_lines=settings.max_lines,
        max_quantity=settings.max_quantity,
        tick_batch=settings.saga_tick_batch,
        require_email_verification=settings.account_require_email_verification,
        cart_ttl=timedelta(seconds=settings.cart_ttl),
        max_cart_lines=settings.max_cart_lines,
        prices_include_tax=settings.prices_include_tax,
    )
    return OrderApp(
        runtime=runtime,
        registration=grpc_api.registration(grpc_api.OrderServicer(service)),
        service_name=grpc_api.SERVICE_NAME,
        authenticator=runtime.authenticator(),
        consumers=[
            runtime.consumer(
                consumers.CONSUMER_NAME,
                consumers.TOPICS,
                {**consumers.handlers(service.handle_reply), **erasure.handlers()},
            )
        ],
        background=[
            Background("saga-timer", lambda: run_saga_timer(service, settings.saga_tick_interval)),
            Background("order-gauges", lambda: count_orders(service)),
            Background("cart-sweeper", lambda: sweep_carts(service)),
            # Wakes the CreateOrder calls waiting for their order to settle (waitSeconds).
            Background("settled-order-listener", service.settled.run),
            # Keeps the shipping methods and tax rates remembered while nothing changes them (terms.py).
            Background("shop-terms-listener", lambda: service.terms.run(settings.database_url)),
        ],
        service=service,
    )


async def seed(*, currency: str, only_if_empty: bool = False, **overrides: Any) -> demo.ShopSeedResult | None:
    """`ecommerce seed`: load the demo shop's terms (idempotent). None when skipped because the
    shop already has terms of its own."""
    app = build(OrderSettings(**overrides))
    try:
        async with transaction(app.runtime.sessions) as session:
            if only_if_empty and not await demo.shop_is_empty(session):
                return None
            return await demo.seed_shop(session, currency=currency, now=datetime.now(UTC))
    finally:
        await app.close()


main = service_main("order", OrderSettings, build)

if __name__ == "__main__":
    from servicekit.runtime import run

    run(main())
