"""Domain errors and the one table that maps them to gRPC status codes.

The service layer raises these; the gRPC interceptor turns them into a status with
`google.rpc` details, and the gateway turns status codes into `extensions.code`.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    """Base of every error a use case may raise on purpose. Its message is safe to show."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    reason: str = "ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgument(DomainError):
    """Bad input; names the offending fields."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "BAD_USER_INPUT"

    def __init__(self, message: str, violations: list[FieldViolation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls(f"{field}: {description}", [FieldViolation(field, description)])


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "CONFLICT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Conflict(DomainError):
    """The request is valid but the state forbids it (an illegal transition)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "CONFLICT"


class Aborted(DomainError):
    """A concurrent request won; the caller may retry."""

    code = grpc.StatusCode.ABORTED
    reason = "CONFLICT"


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "FORBIDDEN"


class RateLimited(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "SERVICE_UNAVAILABLE"


def require(condition: bool, field: str, description: str) -> None:
    """Raise `InvalidArgument` naming `field` unless `condition` holds."""
    if not condition:
        raise InvalidArgument.field(field, description)


class Violations:
    """Collects every field violation of one request, so the caller hears of all at once."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def check(self, condition: bool, field: str, description: str) -> None:
        if not condition:
            self.items.append(FieldViolation(field, description))

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            summary = "; ".join(f"{v.field}: {v.description}" for v in self.items)
            raise InvalidArgument(summary, self.items)
