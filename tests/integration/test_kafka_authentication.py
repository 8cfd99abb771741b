"""Kafka authentication against the embedded broker (docs/security.md, "The broker").

The platform's clients take SASL settings from one place (servicekit.kafka.connection_options).
A client configured for SASL never falls back to an unauthenticated connection, and Tansu with
`--authentication` refuses clients without valid SCRAM credentials. What cannot be shown here is a
client with the right credentials getting in: this Tansu keeps its users in its storage (memory
only, in this build) and creates one only over an authenticated connection, so an authenticating
embedded broker never has a user. The last test pins that limitation, so that a Tansu without it
shows up here.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError

from servicekit.embedded import EmbeddedBroker
from servicekit.embedded.broker import _tansu_binary
from servicekit.kafka import BrokerAccess, create_producer


@contextlib.asynccontextmanager
async def broker(path: Path, *, authentication: bool) -> AsyncIterator[EmbeddedBroker]:
    started = await asyncio.to_thread(EmbeddedBroker(path, authentication=authentication).start)
    try:
        yield started
    finally:
        await asyncio.to_thread(started.stop)


def scram(bootstrap: str, username: str = "order", password: str = "0123456789abcdef") -> BrokerAccess:
    return BrokerAccess(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        username=username,
        password=password,
    )


async def publish(access: str | BrokerAccess) -> None:
    """Connect a producer made as the platform makes its own, and publish one message."""
    producer = create_producer(access, idempotent=False, client_id="auth-test")
    try:
        await producer.start()
        await producer.send_and_wait("auth.test", b"hello")
    finally:
        await producer.stop()


async def test_a_sasl_client_is_refused_by_a_broker_that_does_not_authenticate(tmp_path):
    async with broker(tmp_path / "broker", authentication=False) as plain:
        await publish(plain.bootstrap_servers)  # the broker is up and takes unauthenticated clients

        # The SASL handshake fails, and the client does not carry on without it.
        with pytest.raises(KafkaConnectionError):
            await publish(scram(plain.bootstrap_servers))


async def test_the_authenticating_broker_refuses_clients_without_valid_credentials(tmp_path):
    async with broker(tmp_path / "broker", authentication=True) as secured:
        with pytest.raises(KafkaConnectionError):
            await publish(secured.bootstrap_servers)
        with pytest.raises(KafkaConnectionError):
            await publish(BrokerAccess(bootstrap_servers=secured.bootstrap_servers))
        # An unknown user: the broker ends the SCRAM exchange without a server signature, which
        # aiokafka reports as a KeyError ("v", the signature's field) rather than an auth error.
        with pytest.raises((KafkaError, KeyError)):
            await publish(scram(secured.bootstrap_servers, username="nobody", password="wrong-password"))


async def test_the_authenticating_broker_cannot_be_given_a_user(tmp_path):
    async with broker(tmp_path / "broker", authentication=True) as secured:
        created = await asyncio.to_thread(
            subprocess.run,
            [
                str(_tansu_binary()),
                "user",
                "create",
                "--broker",
                f"tcp://{secured.bootstrap_servers}",
                "--mechanism",
                "scram512",
                "order",
                "0123456789abcdef",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert created.returncode != 0, "Tansu created a user: test a client with the right credentials here"
