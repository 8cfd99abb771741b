"""`python -m order`: the order service, its saga consumer and its saga timer."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from order import consumers, grpc_api
from order.models import inbox, outbox
from order.peers import CatalogClient, PaymentClient
from order.service import OrderService, policy_from
from order.settings import OrderSettings
from order.waiting import SettledOrders
from servicekit.auth import Authenticator
from servicekit.inbox import EventConsumer
from servicekit.logging import configure_service_logging
from servicekit.runtime import ServiceRuntime, serve

log = logging.getLogger(__name__)

GAUGE_INTERVAL = 5.0


@dataclass
class OrderApp:
    runtime: ServiceRuntime
    service: OrderService
    servicer: grpc_api.OrderServicer
    authenticator: Authenticator
    consumer: EventConsumer
    tick_interval: float

    def start_background(self) -> None:
        """The saga's reply consumer, its timer and the listener that wakes CreateOrder's
        waiters, for the life of the process."""
        runtime = self.runtime

        async def consume() -> None:
            await runtime.wait_producer()  # dead letters go out through it
            await self.consumer.run()

        runtime.spawn(consume, "saga-consumer")
        runtime.spawn(self.run_timer, "saga-timer")
        runtime.spawn(self.count_orders, "order-gauges")
        runtime.spawn(self.service.settled.run, "settled-order-listener")

    async def run_timer(self) -> None:
        """Re-send or compensate every saga whose step deadline passed; this also resumes the
        sagas that were in flight when the process last stopped."""
        while True:
            handled = await self.service.resume_due_sagas()
            if handled < self.service.tick_batch:
                await asyncio.sleep(self.tick_interval)

    async def count_orders(self) -> None:
        """Keep the orders-by-status and oldest-saga gauges current (transitions move them between counts)."""
        while True:
            try:
                await self.service.refresh_gauges()
            except (OSError, SQLAlchemyError) as exc:  # the database is away; the next round tries again
                log.warning("cannot count the orders for the gauges: %s", exc)
            await asyncio.sleep(GAUGE_INTERVAL)


def build(settings: OrderSettings) -> OrderApp:
    runtime = ServiceRuntime(settings, "order", outbox_table=outbox)
    assert runtime.outbox is not None
    service = OrderService(
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        catalog=CatalogClient(runtime.channel(settings.catalog_addr), timeout=settings.peer_timeout),
        payments=PaymentClient(runtime.channel(settings.payment_addr), timeout=settings.peer_timeout),
        policy=policy_from(
            settings.step_deadline_seconds, settings.step_retry_budget, settings.payment_retry_delay_seconds
        ),
        cursor_secret=settings.cursor_secret,
        settled=SettledOrders(settings.database_url),
        max_lines=settings.max_lines,
        max_quantity=settings.max_quantity,
        tick_batch=settings.saga_tick_batch,
    )
    consumer = consumers.saga_consumer(
        handle=service.handle_reply,
        sessions=runtime.sessions,
        inbox=inbox,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        dead_letters=runtime.producer,
        max_attempts=settings.consumer_max_attempts,
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )
    return OrderApp(
        runtime,
        service,
        grpc_api.OrderServicer(service),
        runtime.authenticator(),
        consumer,
        tick_interval=settings.saga_tick_interval,
    )


async def main(settings: OrderSettings | None = None) -> None:
    settings = settings or OrderSettings()
    configure_service_logging("order", settings)
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
