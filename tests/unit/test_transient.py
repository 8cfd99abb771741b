"""Which errors mean "a dependency is down" (answer UNAVAILABLE, retry) and which mean a bug."""

from __future__ import annotations

import errno

import asyncpg
import grpc
import pytest
import redis.exceptions
import sqlalchemy.exc

from servicekit.transient import is_transient


def raised_from(outer: Exception, inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except Exception as exc:
        return exc


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        OSError("Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 5432)"),
        OSError(errno.EHOSTUNREACH, "No route to host"),
        TimeoutError(),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
        sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_outages_are_transient(error):
    assert is_transient(error)


def test_an_outage_wrapped_by_sqlalchemy_is_transient():
    wrapped = raised_from(
        sqlalchemy.exc.DBAPIError("INSERT ...", {}, Exception("adapted")),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
    )
    assert is_transient(wrapped)


def test_a_connection_sqlalchemy_invalidated_is_transient():
    error = sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("closed"), connection_invalidated=True)
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad data"),
        KeyError("missing"),
        ZeroDivisionError(),
        FileNotFoundError(errno.ENOENT, "No such file or directory"),
        PermissionError(errno.EACCES, "Permission denied"),
        asyncpg.UniqueViolationError("duplicate key value"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        sqlalchemy.exc.IntegrityError("INSERT ...", {}, Exception("duplicate")),
        raised_from(RuntimeError("handler failed"), ValueError("bad data")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_bugs_and_bad_data_are_not_transient(error):
    assert not is_transient(error)


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="peer said so")


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_a_peer_that_is_away_or_too_slow_is_transient_also_behind_a_domain_error(code):
    assert is_transient(rpc_error(code))
    assert is_transient(raised_from(RuntimeError("account lookup failed"), rpc_error(code)))


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL],
)
def test_a_peer_that_refuses_or_fails_is_not_transient(code):
    assert not is_transient(raised_from(RuntimeError("account lookup failed"), rpc_error(code)))
