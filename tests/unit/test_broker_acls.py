"""The broker's ACLs (servicekit/broker_acls.py) come from one map, `topics.ACCESS`, and that map is
what the services actually do: the consumers each service wires, in their groups, and the topics
its messages go to. `ecommerce kafka-acls` prints them; each principal may write only its own
topics (and the dead-letter topics of what it consumes) and read only what it consumes."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

from ecommerce_cli.main import main
from gateway import live, status
from notification import consumers as notification_consumers
from servicekit import broker_acls, topics
from servicekit.broker_acls import Acl, acls
from servicekit.kafka import dead_letter_topic

SERVICES = ("account", "catalog", "order", "payment", "notification")


def _settings(service: str, data_dir: Path):
    module = importlib.import_module(f"{service}.settings")
    cls = next(v for k, v in vars(module).items() if k.endswith("Settings") and k.startswith(service.title()))
    return cls(
        env="test",
        data_dir=data_dir,
        database_url="postgresql+asyncpg://nobody@127.0.0.1:9/nothing",
        redis_url="redis://127.0.0.1:9/0",
        kafka_bootstrap_servers="127.0.0.1:9",
    )


@pytest.mark.parametrize("service", SERVICES)
async def test_the_map_holds_the_consumers_each_service_wires(service, tmp_path):
    """The service built as it runs (its clients connect lazily: no server is reached)."""
    app = importlib.import_module(f"{service}.__main__").build(_settings(service, tmp_path))
    try:
        wired = {consumer.group_id: tuple(consumer.topics) for consumer in app.consumers}
    finally:
        await app.close()
    access = topics.ACCESS[service]

    assert wired == ({access.group: access.consumes} if access.group else {})


@pytest.mark.parametrize("service", SERVICES)
def test_the_map_holds_the_topics_each_services_messages_go_to(service):
    """A service's messages.py names every topic its outbox writes (servicekit.topics' constants)."""
    try:
        messages = importlib.import_module(f"{service}.messages")
    except ModuleNotFoundError:  # notification publishes no message of its own
        used: set[str] = set()
    else:
        used = {value for value in vars(messages).values() if isinstance(value, str) and value in topics.ALL}

    assert used == set(topics.ACCESS[service].publishes)


def test_notification_dead_letters_only_the_topics_it_consumes():
    """Its mail loop stages a failed e-mail's event on the dead-letter topic of its source topic."""
    assert set(notification_consumers.SOURCE_TOPICS.values()) <= set(topics.ACCESS["notification"].consumes)


def test_the_gateway_reads_order_events_without_a_group_and_writes_only_its_ping():
    gateway = topics.ACCESS["gateway"]

    assert gateway.consumes == (live.TOPIC,)
    assert gateway.group == ""
    assert gateway.publishes == ()
    assert gateway.private == (status.PING_TOPIC,)


def _allowed(principal: str, operation: str, resource_type: str = "TOPIC") -> set[str]:
    return {
        a.resource
        for a in acls()
        if a.principal == f"User:{principal}"
        and a.operation == operation
        and a.resource_type == resource_type
    }


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_writes_its_own_topics_and_reads_what_it_consumes_in_its_group(service):
    access = topics.ACCESS[service]
    dead_letters = {dead_letter_topic(t) for t in access.consumes}

    assert _allowed(service, "WRITE") == set(access.publishes) | dead_letters
    assert _allowed(service, "READ") == set(access.consumes)
    assert _allowed(service, "READ", "GROUP") == ({access.group} if access.group else set())
    assert _allowed(service, "CREATE") == set()


def test_no_service_may_write_what_another_publishes():
    writers: dict[str, set[str]] = {}
    for acl in acls():
        if acl.operation == "WRITE":
            writers.setdefault(acl.resource, set()).add(acl.principal)

    # Each topic has one writer, its publisher; a dead-letter topic one per consumer group reading it.
    for topic in topics.ALL:
        assert len(writers.get(topic, set())) <= 1, topic
    assert writers["order.events"] == {"User:order"}
    assert writers["payment.events.dlq"] == {"User:order", "User:notification"}


def test_the_gateway_reads_order_events_and_uses_its_ping_topic_and_nothing_else():
    assert {(a.resource_type, a.resource, a.operation) for a in acls() if a.principal == "User:gateway"} == {
        ("TOPIC", "order.events", "READ"),
        ("TOPIC", topics.STATUS_PING, "CREATE"),
        ("TOPIC", topics.STATUS_PING, "WRITE"),
        ("TOPIC", topics.STATUS_PING, "READ"),
    }


def test_only_the_topics_job_creates_the_platforms_topics():
    created = {dead for t in topics.ALL for dead in (t, dead_letter_topic(t))}

    assert _allowed("topics", "CREATE") == _allowed("topics", "DESCRIBE") == created
    assert {a.principal for a in acls() if a.operation == "CREATE" and a.resource in created} == {
        "User:topics"
    }


def test_the_json_lists_every_acl(capsys):
    main(["kafka-acls", "--format", "json"])

    assert [Acl(**entry) for entry in json.loads(capsys.readouterr().out)] == acls()


def test_the_table_has_one_line_per_acl(capsys):
    main(["kafka-acls"])
    lines = capsys.readouterr().out.splitlines()

    assert len(lines) == len(acls())
    assert lines[0].split() == ["User:account", "TOPIC", "account.events", "WRITE"]


def test_the_script_creates_every_user_and_grants_each_acl(capsys):
    main(["kafka-acls", "--format", "script"])
    script = capsys.readouterr().out

    for user in topics.ACCESS:
        assert f"--entity-name {user} --add-config" in script
    assert (
        '"$bin/kafka-acls.sh" $connect --add --allow-principal User:catalog --operation Read --topic inventory.commands'
        in script.splitlines()
    )
    assert script.count("kafka-acls.sh") == len({(a.principal, a.resource_type, a.resource) for a in acls()})
    # No password is written into it: each comes from the environment or a mounted Secret's file.
    assert re.findall(r'password="?(.{2})', script) == ["$K"] + ["$("] * len(topics.ACCESS)


@pytest.mark.parametrize("fmt", ["yaml", "", "script; rm -rf /"])
def test_an_unknown_format_is_refused(fmt, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["kafka-acls", "--format", fmt])

    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown format"):
        broker_acls.render(fmt)
