"""How a process reaches the broker: KAFKA_SECURITY_PROTOCOL and the SASL settings become aiokafka's
options in one place (servicekit.kafka.connection_options), which every Kafka client of the
platform is made with; production refuses a start without a chosen protocol."""

from __future__ import annotations

import ast
import logging
import ssl
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from ecommerce_cli.certs import generate
from servicekit import kafka
from servicekit.kafka import BrokerAccess, broker_access, connection_options
from servicekit.settings import PlatformSettings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "5f1b0e9c2d7a4e8b9c3f6a1d0e2b7c4a"
CLIENTS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"}


def settings(**values: object) -> PlatformSettings:
    return PlatformSettings(kafka_bootstrap_servers="kafka:9092", **values)


def sasl(**values: object) -> PlatformSettings:
    defaults = {
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_username": "order",
        "kafka_sasl_password": PASSWORD,
    }
    return settings(**(defaults | values))


def test_plaintext_gives_the_bootstrap_servers_and_no_credentials():
    assert connection_options(broker_access(settings())) == {
        "bootstrap_servers": "kafka:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert connection_options("127.0.0.1:9092") == {"bootstrap_servers": "127.0.0.1:9092"}


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_sasl_gives_the_mechanism_and_this_processs_credentials(mechanism):
    assert connection_options(broker_access(sasl(kafka_sasl_mechanism=mechanism))) == {
        "bootstrap_servers": "kafka:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "order",
        "sasl_plain_password": PASSWORD,
    }


def test_sasl_ssl_verifies_the_brokers_certificate_with_the_given_authority(tmp_path):
    ca = _authority_certificate(tmp_path)

    options = connection_options(
        broker_access(sasl(kafka_security_protocol="SASL_SSL", kafka_ssl_ca_file=ca))
    )

    context = options["ssl_context"]
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [dict(entry[0] for entry in c["subject"])["commonName"] for c in context.get_ca_certs()] == [
        "ecommerce internal CA"
    ]


def test_a_missing_certificate_authority_file_fails_at_start(tmp_path):
    access = broker_access(sasl(kafka_security_protocol="SASL_SSL", kafka_ssl_ca_file=tmp_path / "none.pem"))

    with pytest.raises(FileNotFoundError):
        connection_options(access)


async def test_aiokafka_takes_the_options_of_every_protocol(tmp_path):
    ca = _authority_certificate(tmp_path)
    for access in (
        broker_access(settings()),
        broker_access(sasl()),
        broker_access(sasl(kafka_security_protocol="SASL_SSL", kafka_ssl_ca_file=ca)),
    ):
        options = connection_options(access)
        producer, consumer = AIOKafkaProducer(**options), AIOKafkaConsumer(**options)
        admin = AIOKafkaAdminClient(**options)
        for client in (producer.client, consumer._client, admin._client):
            assert client._security_protocol == access.security_protocol
            if access.security_protocol != "PLAINTEXT":
                assert (client._sasl_plain_username, client._sasl_plain_password) == ("order", PASSWORD)
        await producer.stop()
        await consumer.stop()
        await admin.close()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "order"},
            "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        ({"kafka_sasl_username": "order", "kafka_sasl_password": PASSWORD}, "would send no credentials"),
        ({"kafka_sasl_password": PASSWORD}, "would send no credentials"),
        ({"kafka_ssl_ca_file": "/etc/ssl/ca.pem"}, "only used with KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        ({"kafka_security_protocol": "SSL"}, "PLAINTEXT"),
        ({"kafka_security_protocol": "sasl_plaintext"}, "SASL_PLAINTEXT"),
        ({"kafka_security_protocol": ""}, "PLAINTEXT"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "SCRAM-SHA-512"),
        ({"kafka_sasl_mechanism": "OAUTHBEARER"}, "SCRAM-SHA-256"),
    ],
)
def test_settings_that_cannot_work_stop_the_process_at_start(values, message):
    with pytest.raises(ValidationError, match=message):
        settings(**values)


def test_an_oversized_user_name_is_refused():
    with pytest.raises(ValidationError, match="at most 256 characters"):
        sasl(kafka_sasl_username="u" * 257)


def test_the_password_is_never_shown(caplog):
    configured = sasl()
    access = broker_access(configured)

    assert PASSWORD not in repr(configured)
    assert PASSWORD not in str(configured.model_dump())
    assert PASSWORD not in repr(access)
    assert PASSWORD not in caplog.text


def test_the_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "catalog")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)

    access = broker_access(PlatformSettings())

    assert (access.security_protocol, access.sasl_mechanism, access.username, access.password) == (
        "SASL_SSL",
        "SCRAM-SHA-256",
        "catalog",
        PASSWORD,
    )


def test_production_refuses_to_start_without_a_chosen_security_protocol():
    with pytest.raises(SystemExit, match="KAFKA_SECURITY_PROTOCOL is required in production"):
        broker_access(settings(env="production"))


def test_production_on_a_plaintext_broker_starts_with_a_warning(caplog):
    kafka._warn_plaintext.cache_clear()
    with caplog.at_level(logging.WARNING, logger="servicekit.kafka"):
        access = broker_access(settings(env="production", kafka_security_protocol="PLAINTEXT"))

    assert access.security_protocol == "PLAINTEXT"
    assert "KAFKA_SECURITY_PROTOCOL=PLAINTEXT in production" in caplog.text


def test_production_with_sasl_starts_without_a_warning(caplog):
    kafka._warn_plaintext.cache_clear()
    with caplog.at_level(logging.WARNING, logger="servicekit.kafka"):
        access = broker_access(sasl(env="production"))

    assert access == BrokerAccess("kafka:9092", "SASL_PLAINTEXT", "SCRAM-SHA-512", "order", PASSWORD)
    assert caplog.text == ""


def test_development_needs_no_security_protocol(caplog):
    with caplog.at_level(logging.WARNING, logger="servicekit.kafka"):
        assert broker_access(settings(env="development")).security_protocol == "PLAINTEXT"
    assert caplog.text == ""


# -- one place ------------------------------------------------------------------------------------


def _client_calls() -> list[tuple[str, ast.Call]]:
    found = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in {"tests", ".venv", "protos"} or relative.parts[0].startswith("."):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CLIENTS:
                found.append((f"{relative}:{node.lineno}", node))
    return found


def test_every_kafka_client_of_the_platform_is_made_with_the_connection_options():
    calls = _client_calls()
    assert len(calls) >= 10  # services, gateway, CLI, bench and chaos

    def connected(call: ast.Call) -> bool:
        return any(
            keyword.arg is None
            and isinstance(keyword.value, ast.Call)
            and getattr(keyword.value.func, "id", None) == "connection_options"
            for keyword in call.keywords
        ) and not any(keyword.arg == "bootstrap_servers" for keyword in call.keywords)

    assert [where for where, call in calls if not connected(call)] == []


def _authority_certificate(directory: Path) -> Path:
    """The certificate of a new authority of the platform's own (`ecommerce gen-certs`)."""
    generate(directory, names=["kafka"])
    return directory / "ca.crt"
