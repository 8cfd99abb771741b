"""What every service offers besides its own RPCs: health checking, reflection, request ids."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from account import grpc_api
from servicekit.grpc_server import create_server


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
