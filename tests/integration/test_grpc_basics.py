"""What every service offers besides its own RPCs: health checking, reflection, request ids."""

from __future__ import annotations

import secrets

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from account import grpc_api
from account.__main__ import build
from account.settings import AccountSettings
from ecommerce.account.v1 import account_pb2_grpc
from servicekit.grpc_server import create_server
from tests.integration import harness


async def test_the_service_reports_serving_and_lists_itself_through_reflection(account):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{account.port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=grpc_api.SERVICE_NAME)
        )
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        services = [s.name async for response in call for s in response.list_services_response.service]

    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert grpc_api.SERVICE_NAME in services
    assert "grpc.health.v1.Health" in services


async def test_a_server_without_reflection_does_not_describe_itself():
    server, _ = create_server([], [], authenticator=None, reflection_enabled=False)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                _ = [response async for response in call]
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    finally:
        await server.stop(None)

    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def reflected_services(port: int) -> list[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        return [s.name async for response in call for s in response.list_services_response.service]


async def test_a_service_in_production_serves_no_reflection(account, infra, data_dir):
    settings = AccountSettings(
        **await harness.service_settings(infra, data_dir, "account"),
        env="production",
        bcrypt_rounds=4,
        jwt_private_key_file=account.settings.jwt_private_key_file,
        cursor_secret=secrets.token_urlsafe(32),
        internal_service_token=secrets.token_urlsafe(32),
        kafka_security_protocol="PLAINTEXT",  # production asks for a chosen protocol
    )
    service = harness.InProcess(
        lambda: build(settings), account_pb2_grpc.AccountServiceStub, background=False
    )

    async with service.running():
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await reflected_services(service.port)

    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert grpc_api.SERVICE_NAME in await reflected_services(account.port)  # development: on
