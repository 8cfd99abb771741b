"""Errors across gRPC: domain errors to rich statuses on the server, statuses back to data on the client."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from servicekit.errors import AlreadyExists, DomainError, FieldViolation, InvalidArgument, RateLimited

DOMAIN = "ecommerce"


def to_grpc_status(error: DomainError) -> grpc.Status:
    """One place builds every error status: code, message, ErrorInfo and BadRequest details."""
    status = status_pb2.Status(code=error.code.value[0], message=error.message)
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN)
    if isinstance(error, AlreadyExists) and error.field:
        info.metadata["field"] = error.field
    status.details.add().Pack(info)
    if isinstance(error, InvalidArgument) and error.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in error.violations
            ]
        )
        status.details.add().Pack(bad_request)
    if isinstance(error, RateLimited):
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(error.retry_after), nanos=0)
        )
        status.details.add().Pack(retry)
    return rpc_status.to_status(status)


def internal_status(message: str = "internal error") -> grpc.Status:
    return rpc_status.to_status(status_pb2.Status(code=code_pb2.INTERNAL, message=message))


@dataclass
class RpcErrorDetails:
    """What a client learns from a failed call, whatever the server's language."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    violations: list[FieldViolation] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None


def parse_rpc_error(error: grpc.aio.AioRpcError | grpc.RpcError) -> RpcErrorDetails:
    code = error.code()
    message = error.details() or ""
    result = RpcErrorDetails(code=code, message=message)
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                result.reason = info.reason
                result.metadata = dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                result.violations = [
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                ]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                result.retry_after = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    return result
