"""The ASGI application: GraphQL at /graphql (GraphiQL in development), health endpoints, the
platform's status at /status, and CORS for the origins in GATEWAY_CORS_ORIGINS."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import redis.asyncio as aioredis
from graphql import GraphQLSchema
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET, UnsetType

from gateway import httpcache, playground
from gateway.caching import CachedAnswers
from gateway.changes import CatalogChanges
from gateway.clients import ServiceClients
from gateway.context import Context
from gateway.errors import SAFE_MESSAGES, ApiError, unauthenticated
from gateway.forwarded import client_address, parse_networks
from gateway.guard import GuardedGraphQL
from gateway.live import OrderEventHub
from gateway.protection import Protection
from gateway.responsecache import ResponseCache
from gateway.schema import create_schema
from gateway.settings import GatewaySettings
from gateway.status import PlatformStatus
from servicekit.auth import Authenticator, JwksKeySet, bearer_token
from servicekit.context import new_request_id, request_id_var
from servicekit.errors import Unauthenticated
from servicekit.grpc_tls import GrpcTls, process_grpc_tls
from servicekit.kafka import broker_access
from servicekit.metrics import SideServer
from servicekit.runtime import account_jwks_fetcher
from servicekit.security import TokenVerifier
from servicekit.tracing import configure_tracing

log = logging.getLogger(__name__)


class GatewayState:
    """What lives as long as the process: channels, Redis, the token verifier."""

    def __init__(self, settings: GatewaySettings, tls: GrpcTls | None = None) -> None:
        self.settings = settings
        self.services = ServiceClients(settings, tls)
        self.trusted_proxies = parse_networks(settings.trusted_proxies)
        self.redis = aioredis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.cache = aioredis.from_url(settings.cache_redis, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.protection = Protection(settings, self.redis, self.cache)
        self.order_events = OrderEventHub(broker_access(settings))  # orderStatusChanged
        verifier = TokenVerifier(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            algorithms=tuple(settings.jwt_algorithms),
        )
        self._jwks_channel = self.services._channel(settings.account_addr)
        keys = JwksKeySet(
            verifier,
            account_jwks_fetcher(self._jwks_channel),
            min_refresh_interval=settings.jwks_min_refresh_interval,
            # A token signed by a key rotated in within the interval waits for the refetch.
            max_wait=settings.jwks_min_refresh_interval,
        )
        self.authenticator = Authenticator(keys, self.protection.denylist)
        self.status = PlatformStatus(settings, self.redis, timeout=settings.status_timeout, tls=tls)
        # The response cache: the catalog's change feed is read on a connection of its own (it blocks).
        self.feed = (
            aioredis.from_url(settings.cache_redis, socket_timeout=5.0, socket_connect_timeout=2.0)
            if settings.response_cache
            else None
        )
        self.changes = CatalogChanges(self.feed)
        self.responses = ResponseCache(
            self.changes,
            max_bytes=settings.response_cache_max_bytes if settings.response_cache else 0,
            ttl=settings.response_cache_ttl,
        )
        self.cached_answers = CachedAnswers(
            settings,
            self.responses,
            authenticator=self.authenticator,
            bucket=self.protection.bucket,
            denylist=self.protection.denylist,
            trusted_proxies=self.trusted_proxies,
        )

    def start(self, schema: GraphQLSchema) -> None:
        self.protection.start(schema)
        self.order_events.start()
        self.changes.start()

    async def close(self) -> None:
        await self.changes.stop()
        if self.feed is not None:
            await self.feed.aclose()
        await self.status.close()
        await self.order_events.stop()
        await self.services.close()
        await self.redis.aclose()
        await self.cache.aclose()


class GraphQLApp(GuardedGraphQL[Context]):
    def __init__(self, settings: GatewaySettings) -> None:
        schema = create_schema(settings)
        super().__init__(
            schema,
            graphql_ide=None if settings.production else "graphiql",
            allow_queries_via_get=True,
        )
        self.settings = settings
        self.graphql_schema = schema._schema
        # gRPC channels belong to the event loop that serves requests, so the state is created
        # in the lifespan, not here.
        self._state: GatewayState | None = None

    @property
    def state(self) -> GatewayState:
        if self._state is None:
            raise RuntimeError("the gateway is not started")
        return self._state

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        request_id = request.headers.get("x-request-id") or new_request_id()
        if len(request_id) > 128:
            request_id = new_request_id()
        request_id_var.set(request_id)
        context = Context(
            request=request,
            response=response,
            settings=self.state.settings,
            services=self.state.services,
            request_id=request_id,
            client_address=client_address(
                request.client.host if request.client else None,
                request.headers.getlist("x-forwarded-for"),
                self.state.trusted_proxies,
            ),
            protection=self.state.protection,
            order_events=self.state.order_events,
            responses=self.state.responses,
        )
        token = bearer_token(request.headers.get("authorization"))
        if token is not None:
            context.token = token
            try:
                # The denylist is read with the cost budget, in the same Redis round trip.
                context.unconfirmed = await self.state.authenticator.verify(token)
            except Unauthenticated as exc:
                context.token_error = unauthenticated(exc.message)
            except Exception as exc:  # the account service is unreachable for the JWKS
                # An outage, not a bad token: the client keeps its token and tries again.
                log.warning("cannot verify access token: %s", exc)
                context.token_error = ApiError(SAFE_MESSAGES["SERVICE_UNAVAILABLE"], "SERVICE_UNAVAILABLE")
        return context

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Public catalog reads from the response cache when it holds them; HTTP caching headers."""
        response = await super().run(request, context, root_value)
        if not isinstance(request, Request):
            return response
        return httpcache.finish(
            response,
            self.settings,
            method=request.method,
            authorized="authorization" in request.headers,
            if_none_match=request.headers.get("if-none-match"),
        )

    async def answer_early(self, request: Request) -> Response | None:
        if not self.settings.response_cache:
            return None
        return await self.state.cached_answers.answer(request)

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        result = await super().execute_operation(*args, **kwargs)
        context = kwargs.get("context")
        sub_response = kwargs.get("sub_response")
        if isinstance(context, Context) and context.answer_etag and isinstance(sub_response, Response):
            sub_response.headers["ETag"] = context.answer_etag  # httpcache.finish decides on it
        return result

    async def on_ws_connect(self, context: Context) -> UnsetType:
        """WebSocket clients send their token in `connection_init`: {"Authorization": "Bearer ..."}.
        A token that does not verify closes the connection (4403); none leaves it anonymous."""
        params = context.connection_params or {}
        value = params.get("Authorization", params.get("authorization"))
        if value is None:
            return UNSET
        token = bearer_token(value) if isinstance(value, str) else None
        if token is None:
            raise ConnectionRejectionError({"message": "Authorization must be 'Bearer <access token>'"})
        try:
            # Checked against the denylist now, once for the connection; the upgrade request's
            # own token, if any, is no longer the caller and is not checked.
            context.caller = await self.state.authenticator.authenticate(token)
            context.unconfirmed = None
        except Unauthenticated as exc:
            raise ConnectionRejectionError({"message": exc.message}) from None
        except Exception as exc:  # the account service is unreachable for the JWKS
            log.warning("cannot verify access token: %s", exc)
            raise ConnectionRejectionError({"message": "cannot verify the access token right now"}) from None
        context.token, context.token_error = token, None
        return UNSET

    async def render_graphql_ide(self, request: Request) -> Response:
        return playground.page()

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def encode_json(self, data: object) -> str:
        # Text, not bytes: Strawberry sends bytes over a WebSocket as binary frames, which
        # graphql-transport-ws clients in browsers (GraphiQL's graphql-ws) cannot read.
        return orjson.dumps(data).decode()


class BodySizeLimit:
    """Refuse request bodies over the limit before anything reads them whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "errors": [
                    {
                        "message": f"request body is larger than {self.max_bytes} bytes",
                        "extensions": {"code": "BAD_USER_INPUT"},
                    }
                ]
            },
            status_code=413,
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(settings: GatewaySettings | None = None) -> ASGIApp:
    settings = settings or GatewaySettings()
    tls = process_grpc_tls(settings, "gateway")  # checked before anything listens
    graphql = GraphQLApp(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        configure_tracing("gateway", endpoint=settings.otel_exporter_otlp_endpoint)
        side = SideServer()  # /metrics, /healthz, /readyz on the metrics port
        await side.start(settings.host, settings.metrics_port)
        graphql._state = GatewayState(settings, tls)
        graphql._state.start(graphql.graphql_schema)
        side.ready = True
        try:
            yield
        finally:
            side.ready = False
            await graphql._state.close()
            graphql._state = None
            await side.close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def status(request: Request) -> Response:
        report = await graphql.state.status.report()
        return JSONResponse(
            report.as_json(), status_code=200 if report.ok else 503, headers={"Cache-Control": "no-store"}
        )

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", healthz),
            Route("/status", status),
            *playground.routes(enabled=graphql.graphql_ide is not None),
        ],
        middleware=cors_middleware(settings.cors_origins),
        lifespan=lifespan,
    )
    return BodySizeLimit(app, settings.max_body_bytes)


def cors_middleware(origins: tuple[str, ...]) -> list[Middleware]:
    """Cross-origin answers for `origins` only (none when empty). Cookies and the Authorization
    header are allowed only for a listed origin, never for `*`."""
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_credentials="*" not in origins,
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-Request-Id",
                "traceparent",
                "tracestate",
                # The headers the CSRF check accepts (gateway/guard.py).
                "X-Requested-With",
                "Apollo-Require-Preflight",
                "X-Apollo-Operation-Name",
            ],
            max_age=600,
        )
    ]
