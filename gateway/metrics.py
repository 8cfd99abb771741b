"""One Strawberry extension for what every GraphQL operation leaves behind: a span, RED metrics, a log line.

It is the outermost extension, so its span covers parsing, validation, the limits and execution,
and every gRPC call made while resolving continues its trace. The errors it counts are read
before `MaskErrors` hides them, so an unexpected failure counts as INTERNAL, not as a bad query.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

from graphql import GraphQLError, GraphQLSyntaxError
from opentelemetry.trace import Span
from strawberry.extensions import SchemaExtension

from gateway.errors import should_mask
from servicekit.logging import access_logged
from servicekit.metrics import GRAPHQL_DURATION, GRAPHQL_OPERATIONS
from servicekit.tracing import server_span

log = logging.getLogger(__name__)

# Operation names come from clients: only sane ones become label values, and only so many.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_OPERATION_NAMES = 200
_seen_names: set[str] = set()


def operation_label(name: str | None) -> str:
    if not name:
        return "anonymous"
    if not _NAME.match(name):
        return "invalid"
    if name not in _seen_names:
        if len(_seen_names) >= MAX_OPERATION_NAMES:
            return "other"
        _seen_names.add(name)
    return name


def result_code(errors: list[GraphQLError] | None) -> str:
    """OK, or the first error's `extensions.code` (INTERNAL for what gets masked)."""
    if not errors:
        return "OK"
    error = errors[0]
    code = (error.extensions or {}).get("code")
    if isinstance(code, str) and code:
        return code[:40]
    if isinstance(error, GraphQLSyntaxError):
        return "GRAPHQL_PARSE_FAILED"
    # A refusal before execution whose error carries no code yet (the limits tag theirs later).
    return "INTERNAL" if should_mask(error) else "GRAPHQL_VALIDATION_FAILED"


class Observability(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        request = getattr(context.context, "request", None)
        headers = request.headers if request is not None else {}
        started = time.perf_counter()
        with server_span("graphql", headers) as span:
            try:
                yield
            except Exception as exc:  # an extension refused the document by raising: count it, pass it on
                self._record(
                    span,
                    started,
                    [exc if isinstance(exc, GraphQLError) else GraphQLError(str(exc), original_error=exc)],
                )
                raise
            result = context.result
            self._record(
                span, started, context.pre_execution_errors or (result.errors if result is not None else None)
            )

    def _record(self, span: Span | None, started: float, errors: list[GraphQLError] | None) -> None:
        context = self.execution_context
        name = operation_label(context.operation_name)  # known once the document is parsed
        try:
            kind = context.operation_type.value
        except Exception:  # no document, or no operation of that name: the error says so
            kind = "unknown"
        record_operation(span, name, kind, result_code(errors), time.perf_counter() - started)


def record_operation(span: Span | None, name: str, kind: str, code: str, elapsed: float) -> None:
    """The span's name and attributes, the RED metrics and the access line of one operation,
    executed or answered from the response cache."""
    if span is not None:
        span.update_name(f"graphql {kind} {name}")
        span.set_attribute("graphql.operation.name", name)
        span.set_attribute("graphql.operation.type", kind)
        span.set_attribute("graphql.result.code", code)
    GRAPHQL_OPERATIONS.labels(name, kind, code).inc()
    GRAPHQL_DURATION.labels(name, kind).observe(elapsed)
    if access_logged(code == "OK"):
        log.info(
            "graphql",
            extra={
                "operation": name,
                "operation_type": kind,
                "code": code,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
