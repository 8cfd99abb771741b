"""gRPC status codes to GraphQL `extensions.code`, in one table."""

from __future__ import annotations

import grpc
from graphql import GraphQLError

from servicekit.rpc_status import parse_rpc_error

CODES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAUTHENTICATED: "UNAUTHENTICATED",
    grpc.StatusCode.PERMISSION_DENIED: "FORBIDDEN",
    grpc.StatusCode.NOT_FOUND: "NOT_FOUND",
    grpc.StatusCode.INVALID_ARGUMENT: "BAD_USER_INPUT",
    grpc.StatusCode.OUT_OF_RANGE: "BAD_USER_INPUT",
    grpc.StatusCode.ALREADY_EXISTS: "CONFLICT",
    grpc.StatusCode.FAILED_PRECONDITION: "CONFLICT",
    grpc.StatusCode.ABORTED: "CONFLICT",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "RATE_LIMITED",
    grpc.StatusCode.UNAVAILABLE: "SERVICE_UNAVAILABLE",
    grpc.StatusCode.DEADLINE_EXCEEDED: "SERVICE_UNAVAILABLE",
}
SAFE_MESSAGES = {
    "SERVICE_UNAVAILABLE": "a service is temporarily unavailable; try again shortly",
    "INTERNAL": "internal error",
}


class ApiError(GraphQLError):
    """An error we mean to show; anything else is masked."""

    def __init__(self, message: str, code: str, **extensions: object) -> None:
        super().__init__(
            message, extensions={"code": code, **{k: v for k, v in extensions.items() if v is not None}}
        )


def camel_case(path: str) -> str:
    """`current_password` -> `currentPassword`, per dotted segment, as GraphQL names fields."""

    def one(segment: str) -> str:
        head, *rest = segment.split("_")
        return head + "".join(part[:1].upper() + part[1:] for part in rest)

    return ".".join(one(s) for s in path.split("."))


# The request fields of every paginated RPC, as the connection arguments that carry them.
PAGE_ARGUMENTS = {"pageToken": "after", "pageSize": "first"}


def argument_name(field: str) -> str:
    """A service's request field as the GraphQL argument a client sent: `page_token` -> `after`."""
    name = camel_case(field)
    return PAGE_ARGUMENTS.get(name, name)


def from_rpc_error(error: grpc.aio.AioRpcError) -> ApiError:
    details = parse_rpc_error(error)
    code = CODES.get(details.code, "INTERNAL")
    message = SAFE_MESSAGES.get(code, details.message or code.lower())
    extensions: dict[str, object] = {}
    if details.violations:
        extensions["field"] = argument_name(details.violations[0].field)
        extensions["violations"] = [
            {"field": argument_name(v.field), "message": v.description} for v in details.violations
        ]
    elif "field" in details.metadata:
        extensions["field"] = argument_name(details.metadata["field"])
    if details.reason and code not in ("INTERNAL", "SERVICE_UNAVAILABLE"):
        extensions["reason"] = details.reason
    if details.retry_after is not None:
        extensions["retryAfter"] = details.retry_after
    return ApiError(message, code, **extensions)


def unauthenticated(message: str = "sign in first: this operation needs an access token") -> ApiError:
    return ApiError(message, "UNAUTHENTICATED")


def bad_input(field: str, message: str) -> ApiError:
    return ApiError(f"{field}: {message}", "BAD_USER_INPUT", field=field)


def should_mask(error: GraphQLError) -> bool:
    """Mask everything but our own errors and GraphQL's own (syntax, validation) errors."""
    original = error.original_error
    if original is None:
        return False
    if error.path is None and isinstance(original, GraphQLError):
        return False  # a request error, e.g. a variable that does not fit its type: the client's to fix
    return not isinstance(original, ApiError)
