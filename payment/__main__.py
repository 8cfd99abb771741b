"""`python -m payment`: the payment service."""

from __future__ import annotations

from dataclasses import dataclass

from payment import consumers, grpc_api
from payment.models import inbox, outbox
from payment.provider import GuardedProvider, SimulatedProvider
from payment.service import PaymentService
from payment.settings import PaymentSettings
from servicekit.auth import Authenticator, JwksFetcher
from servicekit.inbox import EventConsumer
from servicekit.logging import configure_service_logging
from servicekit.runtime import ServiceRuntime, serve


@dataclass
class PaymentApp:
    runtime: ServiceRuntime
    service: PaymentService
    servicer: grpc_api.PaymentServicer
    authenticator: Authenticator
    provider: SimulatedProvider
    consumer: EventConsumer

    def start_background(self) -> None:
        """The payment.commands consumer, once the producer (its dead-letter sender) is up."""

        async def consume() -> None:
            await self.runtime.wait_producer()
            await self.consumer.run()

        self.runtime.spawn(consume, "payment-commands-consumer")


def build(settings: PaymentSettings, *, jwks: JwksFetcher | None = None) -> PaymentApp:
    """The service wired from its settings; `jwks` replaces the account service's key set (tests)."""
    runtime = ServiceRuntime(settings, "payment", outbox_table=outbox)
    assert runtime.outbox is not None
    provider = SimulatedProvider(
        runtime.sessions,
        hang=settings.simulated_hang,
        latency=settings.simulated_latency,
        failure_rate=settings.simulated_failure_rate,
    )
    guarded = GuardedProvider.create(
        provider,
        timeout=settings.provider_timeout,
        attempts=settings.retry_attempts,
        backoff_base=settings.backoff_base,
        backoff_max=settings.backoff_max,
        failure_threshold=settings.breaker_failure_threshold,
        cool_down=settings.breaker_cool_down,
    )
    service = PaymentService(sessions=runtime.sessions, outbox=runtime.outbox, provider=guarded)
    consumer = EventConsumer(
        name="payment",
        topics=list(consumers.TOPICS),
        handlers=consumers.handlers(service),
        follow_up_types=consumers.FOLLOW_UP_TYPES,
        sessions=runtime.sessions,
        inbox=inbox,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        dead_letters=runtime.producer,
        max_attempts=settings.consumer_max_attempts,
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )
    return PaymentApp(
        runtime=runtime,
        service=service,
        servicer=grpc_api.PaymentServicer(service),
        authenticator=runtime.authenticator(jwks),
        provider=provider,
        consumer=consumer,
    )


async def main(settings: PaymentSettings | None = None) -> None:
    settings = settings or PaymentSettings()
    configure_service_logging("payment", settings)
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
