"""Several processes per service: peer targets, round-robin channels, bounded connection ages."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecommerce_cli import parse_replicas
from ecommerce_cli.stack import Infrastructure, Platform
from servicekit.grpc_server import create_server, server_connection_age_options
from servicekit.runtime import CHANNEL_OPTIONS, grpc_channel
from servicekit.settings import MAX_TARGET_LENGTH, PlatformSettings, grpc_target


@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("127.0.0.1:50052", "127.0.0.1:50052"),
        ("catalog:50051", "catalog:50051"),
        ("127.0.0.1:50052,127.0.0.1:50062", "ipv4:127.0.0.1:50052,127.0.0.1:50062"),
        ("[::1]:50052,[::1]:50062", "ipv6:[::1]:50052,[::1]:50062"),
        ("dns:///catalog.shop.svc.cluster.local:50051", "dns:///catalog.shop.svc.cluster.local:50051"),
        ("ipv4:10.0.0.1:50051,10.0.0.2:50051", "ipv4:10.0.0.1:50051,10.0.0.2:50051"),
    ],
)
def test_a_peer_address_becomes_a_target_over_every_listed_process(address: str, target: str):
    assert grpc_target(address) == target


@pytest.mark.parametrize(
    "address",
    [
        "",
        "catalog",
        "catalog:",
        "catalog:0",
        "catalog:65536",
        "catalog:http",
        "catalog:5005\u00b2",
        "127.0.0.1:50052,",
        ",127.0.0.1:50052",
        "catalog-1:50051,catalog-2:50051",
        "127.0.0.1:50052,[::1]:50062",
        "dns:///",
        "ipv4:",
        "127.0.0.1: 50052",
        "127.0.0.1:50052\n",
        "127.0.0.1:50052\x00",
        "1" * (MAX_TARGET_LENGTH - 5) + ".1:50052",
    ],
)
def test_a_malformed_or_hostile_peer_address_is_refused(address: str):
    with pytest.raises(ValueError, match=r"address|host:port"):
        grpc_target(address)


def test_the_address_settings_accept_a_list_and_refuse_a_malformed_one(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CATALOG_ADDR", "127.0.0.1:50052,127.0.0.1:50062")
    assert PlatformSettings().catalog_addr == "ipv4:127.0.0.1:50052,127.0.0.1:50062"
    monkeypatch.setenv("CATALOG_ADDR", "catalog:50051,other:50051")
    with pytest.raises(ValueError, match="dns:///"):
        PlatformSettings()


def test_channels_balance_round_robin():
    assert ("grpc.lb_policy_name", "round_robin") in CHANNEL_OPTIONS


def test_servers_bound_a_connections_age_with_a_grace():
    assert server_connection_age_options(30.0, 15.0) == [
        ("grpc.max_connection_age_ms", 30_000),
        ("grpc.max_connection_age_grace_ms", 15_000),
    ]
    assert server_connection_age_options(None, 15.0) == []


async def _counting_server(
    counts: dict[int, int], index: int, *, age: float | None = None, delay: float = 0.0
):
    async def probe() -> None:
        counts[index] += 1
        await asyncio.sleep(delay)

    server, _ = create_server(
        [],
        [],
        authenticator=None,
        probes={"probe": probe},
        max_connection_age=age,
        max_connection_age_grace=5.0,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def test_a_channel_to_a_list_of_processes_spreads_its_calls_over_all_of_them():
    counts = {0: 0, 1: 0}
    servers = [await _counting_server(counts, i) for i in range(2)]
    try:
        target = ",".join(f"127.0.0.1:{port}" for _, port in servers)
        async with grpc_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(20):
                await stub.Check(health_pb2.HealthCheckRequest(service="probe"), timeout=5)
        # The first calls may all go to the process that connected first; then they alternate.
        assert sum(counts.values()) == 20
        assert min(counts.values()) >= 5
    finally:
        for server, _ in servers:
            await server.stop(None)


async def test_a_call_outliving_the_connections_age_finishes_within_the_grace():
    counts = {0: 0}
    server, port = await _counting_server(counts, 0, age=0.2, delay=1.0)
    try:
        async with grpc_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            response = await stub.Check(health_pb2.HealthCheckRequest(service="probe"), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(None)


def test_each_further_replica_has_its_own_ports_and_every_client_names_them_all(tmp_path: Path):
    infra = Infrastructure(tmp_path)
    infra.postgres_url = "postgresql://postgres@127.0.0.1:5432/postgres"
    platform = Platform(infra, ["catalog"], replicas=3, extra_env={"KAFKA_TOPIC_PARTITIONS": "2"})
    assert platform.process_names("catalog") == ["catalog", "catalog-2", "catalog-3"]
    assert [platform.grpc_port(n) for n in platform.process_names("catalog")] == [50052, 50062, 50072]
    assert platform.metrics_port("catalog-3") == 9123
    env = platform.environment()
    assert env["CATALOG_ADDR"] == "ipv4:127.0.0.1:50052,127.0.0.1:50062,127.0.0.1:50072"
    single = Platform(infra, ["catalog"]).environment()
    assert single["CATALOG_ADDR"] == "127.0.0.1:50052"


def test_there_are_at_least_as_many_partitions_as_replicas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    infra = Infrastructure(tmp_path)
    infra.postgres_url = "postgresql://postgres@127.0.0.1:5432/postgres"
    monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "2")
    assert Platform(infra, ["catalog"], replicas=5).environment()["KAFKA_TOPIC_PARTITIONS"] == "5"
    assert Platform(infra, ["catalog"], replicas=1).environment()["KAFKA_TOPIC_PARTITIONS"] == "2"


@pytest.mark.parametrize("replicas", [0, -1])
def test_a_platform_without_a_replica_is_refused(tmp_path: Path, replicas: int):
    with pytest.raises(ValueError, match="at least 1"):
        Platform(Infrastructure(tmp_path), ["catalog"], replicas=replicas)


@pytest.mark.parametrize("text", ["0", "9", "-1", "two", "", "1.5", "\u00b2", "99999999999999999999"])
def test_replicas_option_refuses_what_is_not_1_to_8(text: str):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_replicas(text)
