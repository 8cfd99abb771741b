"""gRPC between the processes over mutual TLS (GRPC_TLS_*): a service with it on answers only
clients holding a certificate of the platform's CA, refuses plaintext and strangers' certificates,
and the JWKS fetch of every other process runs over it with the channel its settings make."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from account.__main__ import build
from account.settings import AccountSettings
from ecommerce.account.v1 import account_pb2, account_pb2_grpc
from ecommerce_cli.certs import generate
from ecommerce_cli.stack import DEFAULT_PORTS, Infrastructure, Platform
from gateway.clients import ServiceClients
from gateway.settings import GatewaySettings
from servicekit.errors import Unavailable
from servicekit.grpc_server import bind, create_server
from servicekit.grpc_tls import GrpcTls, load_grpc_tls
from servicekit.runtime import ServiceRuntime, account_jwks_fetcher, grpc_channel
from servicekit.settings import PlatformSettings, ServiceSettings
from tests.integration import harness


def tls_settings(folder: Path) -> dict[str, Any]:
    """The GRPC_TLS_* settings of the process whose certificate is in `folder` (gen-certs' layout)."""
    return {
        "grpc_tls_enabled": True,
        "grpc_tls_ca_file": str(folder / "ca.crt"),
        "grpc_tls_cert_file": str(folder / "tls.crt"),
        "grpc_tls_key_file": str(folder / "tls.key"),
    }


def tls_of(folder: Path, **settings: Any) -> GrpcTls:
    tls = load_grpc_tls(PlatformSettings(**tls_settings(folder), **settings))
    assert tls is not None
    return tls


@dataclass
class Certificates:
    platform: Path  # the platform's CA and a certificate for account, order and gateway
    stranger: Path  # another CA, with a gateway certificate of its own


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    platform, stranger = tmp_path_factory.mktemp("platform-ca"), tmp_path_factory.mktemp("stranger-ca")
    generate(platform, names=["account", "order", "gateway"])
    generate(stranger, names=["gateway"])
    return Certificates(platform, stranger)


@pytest.fixture(scope="module")
async def tls_account(infra, data_dir: Path, certificates: Certificates) -> AsyncIterator[harness.InProcess]:
    """The account service, started as `ecommerce serve account` starts it, with GRPC_TLS_* on."""
    settings = AccountSettings(
        **await harness.service_settings(infra, data_dir, "account"),
        bcrypt_rounds=4,
        jwt_private_key_file=data_dir / "account-tls-key.pem",
        **tls_settings(certificates.platform / "account"),
    )
    service = harness.InProcess(
        lambda: build(settings), account_pb2_grpc.AccountServiceStub, background=False
    )
    async with service.running():
        yield service


async def health(channel: grpc.aio.Channel) -> int:
    response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return response.status


async def test_a_client_with_a_certificate_of_the_platforms_ca_calls_the_service_over_tls(
    tls_account, certificates
):
    async with grpc_channel(tls_account.address, tls=tls_of(certificates.platform / "gateway")) as channel:
        status = await health(channel)
        keys = await account_pb2_grpc.AccountServiceStub(channel).GetJwks(
            account_pb2.GetJwksRequest(), timeout=5
        )

    assert status == health_pb2.HealthCheckResponse.SERVING
    assert orjson.loads(keys.jwks_json)["keys"]


async def test_a_plaintext_client_is_refused(tls_account):
    async with grpc_channel(tls_account.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health(channel)

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def _stranger_certificate(certificates: Certificates) -> grpc.ChannelCredentials:
    """Trusts the platform's CA, presents a certificate of another CA."""
    stranger = certificates.stranger / "gateway"
    return grpc.ssl_channel_credentials(
        root_certificates=(certificates.platform / "ca.crt").read_bytes(),
        private_key=(stranger / "tls.key").read_bytes(),
        certificate_chain=(stranger / "tls.crt").read_bytes(),
    )


def _no_certificate(certificates: Certificates) -> grpc.ChannelCredentials:
    """Trusts the platform's CA, presents no certificate (TLS, but not mutual)."""
    return grpc.ssl_channel_credentials(root_certificates=(certificates.platform / "ca.crt").read_bytes())


@pytest.mark.parametrize("credentials", [_stranger_certificate, _no_certificate])
async def test_a_client_without_a_certificate_of_the_platforms_ca_is_refused(
    tls_account, certificates, credentials
):
    async with grpc.aio.secure_channel(tls_account.address, credentials(certificates)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health(channel)

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_refuses_a_server_whose_certificate_another_ca_issued(certificates):
    server, _ = create_server([], [], authenticator=None)
    port = bind(server, "127.0.0.1:0", tls_of(certificates.stranger / "gateway"))
    await server.start()
    try:
        async with grpc_channel(
            f"127.0.0.1:{port}", tls=tls_of(certificates.platform / "gateway")
        ) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health(channel)
    finally:
        await server.stop(None)

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_another_service_fetches_the_jwks_over_tls_with_the_channel_its_settings_make(
    tls_account, certificates
):
    tls_on = ServiceRuntime(
        ServiceSettings(account_addr=tls_account.address, **tls_settings(certificates.platform / "order")),
        "order",
    )
    tls_off = ServiceRuntime(ServiceSettings(account_addr=tls_account.address), "order")
    try:
        keys = await account_jwks_fetcher(tls_on.channel(tls_on.settings.account_addr))()
        with pytest.raises(Unavailable):
            await account_jwks_fetcher(tls_off.channel(tls_off.settings.account_addr), timeout=1)()
    finally:
        await tls_on.close()
        await tls_off.close()

    served = await tls_account.stub.GetJwks(account_pb2.GetJwksRequest(), timeout=5)
    assert keys == orjson.loads(served.jwks_json)
    assert keys["keys"]


async def test_the_gateway_calls_the_services_over_tls_with_its_own_certificate(tls_account, certificates):
    clients = ServiceClients(
        GatewaySettings(account_addr=tls_account.address), tls_of(certificates.platform / "gateway")
    )
    try:
        keys = await clients.account.GetJwks(account_pb2.GetJwksRequest(), timeout=5)
    finally:
        await clients.close()

    assert orjson.loads(keys.jwks_json)["keys"]


async def test_a_list_of_addresses_is_checked_against_the_server_name_setting(certificates):
    servers = []
    ports = []
    for _ in range(2):
        server, _ = create_server([], [], authenticator=None)
        ports.append(bind(server, "127.0.0.1:0", tls_of(certificates.platform / "account")))
        await server.start()
        servers.append(server)
    target = ",".join(f"127.0.0.1:{port}" for port in ports)
    try:
        # Two addresses name no one host: the certificate's name is given instead.
        async with grpc_channel(
            target, tls=tls_of(certificates.platform / "gateway", grpc_tls_server_name="localhost")
        ) as channel:
            status = await health(channel)
        async with grpc_channel(target, tls=tls_of(certificates.platform / "gateway")) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health(channel)
    finally:
        for server in servers:
            await server.stop(None)

    assert status == health_pb2.HealthCheckResponse.SERVING
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_dev_with_grpc_tls_waits_for_a_service_as_the_gateway_calls_it(tmp_path):
    generate(tmp_path, names=["account", "gateway"])
    server, _ = create_server([], [], authenticator=None)
    port = bind(server, "127.0.0.1:0", tls_of(tmp_path / "account"))
    await server.start()
    ports = {**DEFAULT_PORTS, "account": port}
    try:
        await Platform(Infrastructure(tmp_path), ["account"], ports=ports, grpc_tls_dir=tmp_path).wait_grpc(
            "account", timeout=10
        )
        with pytest.raises(TimeoutError):  # in plaintext the service never answers
            await Platform(Infrastructure(tmp_path), ["account"], ports=ports).wait_grpc("account", timeout=1)
    finally:
        await server.stop(None)
