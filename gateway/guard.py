"""HTTP-level refusals, each a JSON GraphQL error with an `extensions.code`:

- CSRF: a POST whose content type a browser may send cross-site without a preflight
  (`application/x-www-form-urlencoded`, `multipart/form-data`, `text/plain`, or none) is refused
  unless it carries `X-Requested-With`, `Apollo-Require-Preflight` or `X-Apollo-Operation-Name`
  (CSRF_CHECK_FAILED). Strawberry would refuse those bodies anyway ("Unsupported content type");
  this makes the reason explicit. Access tokens travel in a header, never in a cookie, so a
  cross-site GET carries no credential.
- Batches (a JSON list of operations): BATCHING_DISABLED unless `GATEWAY_BATCHING=true`, then at
  most `GATEWAY_MAX_BATCH_OPERATIONS` (BATCH_TOO_LARGE). Each operation of a batch is limited,
  costed and charged on its own.
- GET runs queries only: a mutation over GET is METHOD_NOT_ALLOWED (405).
- Anything else Strawberry refuses at the HTTP level becomes BAD_REQUEST with its status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData, GraphQLRequestProtocol
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.unset import UNSET

from gateway.settings import GatewaySettings

CSRF_CHECK_FAILED = "CSRF_CHECK_FAILED"
BATCHING_DISABLED = "BATCHING_DISABLED"
BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
BAD_REQUEST = "BAD_REQUEST"

SIMPLE_CONTENT_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain", ""}
)
PREFLIGHT_HEADERS = ("x-requested-with", "apollo-require-preflight", "x-apollo-operation-name")


class Refused(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extensions = extensions

    def response(self) -> Response:
        return JSONResponse(
            {"errors": [{"message": self.message, "extensions": {"code": self.code, **self.extensions}}]},
            status_code=self.status,
            headers=self.headers,
        )


ContextT = TypeVar("ContextT")


class GuardedGraphQL(GraphQL[ContextT, None]):
    """Strawberry's ASGI view with the refusals above. Subclasses set `settings`."""

    settings: GatewaySettings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except Refused as refused:
            response = refused.response()
        except HTTPException as exc:
            response = Refused(exc.status_code, BAD_REQUEST, exc.reason).response()
        await response(scope, receive, send)

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        if isinstance(request, Request):
            if request.method == "POST":
                check_csrf(request.headers)
            early = await self.answer_early(request)
            if early is not None:
                return early
        return await super().run(request, context, root_value)

    async def answer_early(self, request: Request) -> Response | None:
        """An answer given without executing anything (the response cache's); None executes."""
        return None

    def _validate_batch_request(
        self, request_data: Sequence[GraphQLRequestData], protocol: GraphQLRequestProtocol
    ) -> None:
        if not self.settings.batching:
            raise Refused(400, BATCHING_DISABLED, "batched operations are not accepted; send one operation")
        if not request_data:
            raise Refused(400, BAD_REQUEST, "an empty batch")
        if len(request_data) > self.settings.max_batch_operations:
            raise Refused(
                400,
                BATCH_TOO_LARGE,
                f"a batch may hold at most {self.settings.max_batch_operations} operations",
                maximumOperations=self.settings.max_batch_operations,
            )
        super()._validate_batch_request(request_data, protocol)  # type: ignore[arg-type]

    async def execute_single(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_single(*args, **kwargs)
        except HTTPException as exc:
            if isinstance(exc.__cause__, InvalidOperationTypeError):
                raise Refused(
                    405,
                    METHOD_NOT_ALLOWED,
                    "only queries may be sent with GET; use POST",
                    headers={"Allow": "POST"},
                ) from None
            raise

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET with only `extensions` is an automatic persisted query, not a visitor.
        return super().should_render_graphql_ide(request) and "extensions" not in request.query_params


def check_csrf(headers: Mapping[str, str]) -> None:
    mime = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if mime in SIMPLE_CONTENT_TYPES and not any(headers.get(h) for h in PREFLIGHT_HEADERS):
        raise Refused(
            400,
            CSRF_CHECK_FAILED,
            "refused as a possible cross-site request forgery: send `Content-Type: application/json`, "
            "or an `X-Requested-With` header",
        )
