"""aiokafka on uvloop: a write on a connection the broker just closed must be a connection error
(which aiokafka's producer, fetcher and coordinator handle by reconnecting), never an error that
ends their background tasks for good (aio-libs/aiokafka#1038)."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.metadata import MetadataRequest

import servicekit.kafka  # noqa: F401  (what every service imports; it guards the connections)
from servicekit.kafka import ensure_topics
from servicekit.topics import ACCOUNT_LINKS

UVLOOP_CLOSED = (
    "unable to perform operation on <TCPTransport closed=True reading=False>; the handler is closed"
)


class _ClosedTransportWriter:
    """The writer of a connection whose uvloop transport the peer has closed: the write raises
    uvloop's RuntimeError (the same race cannot be produced on demand over a real socket)."""

    def __init__(self, writer) -> None:
        self.writer = writer
        self.transport = writer.transport

    def write(self, data: bytes) -> None:
        raise RuntimeError(UVLOOP_CLOSED)

    def close(self) -> None:
        self.writer.close()


async def test_a_write_on_a_transport_closed_under_it_is_a_connection_error(infra):
    host, port = infra.kafka_bootstrap_servers.split(":")
    conn = await create_conn(host, int(port))
    try:
        answer = await conn.send(MetadataRequest([]))
        assert answer.brokers  # the connection works
        conn._writer = _ClosedTransportWriter(conn._writer)

        with pytest.raises(KafkaConnectionError, match="broken"):
            conn.send(MetadataRequest([]))

        assert not conn.connected()  # closed, so the client connects afresh
    finally:
        conn.close()


async def test_other_runtime_errors_are_not_taken_for_a_closed_connection(infra):
    host, port = infra.kafka_bootstrap_servers.split(":")
    conn = await create_conn(host, int(port))
    try:

        class Broken(_ClosedTransportWriter):
            def write(self, data: bytes) -> None:
                raise RuntimeError("something else")

        conn._writer = Broken(conn._writer)
        with pytest.raises(RuntimeError, match="something else"):
            conn.send(MetadataRequest([]))
    finally:
        conn.close()


async def test_the_links_topic_is_created_keeping_a_link_no_longer_than_it_opens_anything(infra):
    """account.links carries one-time links that open nothing after 7 days: its log keeps them no longer."""
    await ensure_topics(infra.kafka_bootstrap_servers, [ACCOUNT_LINKS], partitions=1)
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, ACCOUNT_LINKS)])
    finally:
        await admin.close()
    [(error_code, *_rest, entries)] = response.resources
    settings = {entry[0]: entry[1] for entry in entries}

    assert error_code == 0
    assert settings["retention.ms"] == str(7 * 24 * 3600 * 1000)
