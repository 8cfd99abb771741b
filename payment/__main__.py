"""`python -m payment`: the payment service and its payment.commands consumer."""

from __future__ import annotations

from dataclasses import dataclass

from payment import consumers, grpc_api
from payment.models import inbox, outbox
from payment.provider import GuardedProvider, SimulatedProvider
from payment.service import PaymentService
from payment.settings import PaymentSettings
from servicekit.app import ServiceApp, service_main
from servicekit.auth import JwksFetcher
from servicekit.runtime import ServiceRuntime


@dataclass(kw_only=True)
class PaymentApp(ServiceApp):
    service: PaymentService
    provider: SimulatedProvider


def build(settings: PaymentSettings, *, jwks: JwksFetcher | None = None) -> PaymentApp:
    """The service wired from its settings; `jwks` replaces the account service's key set (tests)."""
    runtime = ServiceRuntime(settings, "payment", outbox_table=outbox, inbox_table=inbox)
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
    return PaymentApp(
        runtime=runtime,
        registration=grpc_api.registration(grpc_api.PaymentServicer(service)),
        service_name=grpc_api.SERVICE_NAME,
        authenticator=runtime.authenticator(jwks),
        consumers=[
            runtime.consumer(
                "payment",
                consumers.TOPICS,
                consumers.handlers(service),
                follow_up_types=consumers.FOLLOW_UP_TYPES,
            )
        ],
        service=service,
        provider=provider,
    )


main = service_main("payment", PaymentSettings, build)

if __name__ == "__main__":
    from servicekit.runtime import run

    run(main())
