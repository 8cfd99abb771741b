"""`python -m gateway`: the GraphQL gateway on uvicorn."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.serving import OneWriteHttpProtocol
from gateway.settings import GatewaySettings
from servicekit.heap import freeze_startup_heap
from servicekit.logging import configure_service_logging


def main() -> None:
    settings = GatewaySettings()
    configure_service_logging("gateway", settings)
    app = create_app(settings)
    freeze_startup_heap()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=OneWriteHttpProtocol,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
