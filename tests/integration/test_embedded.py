"""The embedded servers start for real, answer their clients, keep (or forget) data and leave nothing behind."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from servicekit.embedded import EmbeddedBroker, EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError

TIMEOUT = 30.0
ROOT = Path(__file__).resolve().parents[2]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _assert_gone(pid: int, port: int) -> None:
    """Neither the server nor anything it forked is alive, and its port is closed."""
    assert not psutil.pid_exists(pid), f"pid {pid} is still alive"
    leftovers = []
    for other in psutil.pids():
        try:
            if os.getpgid(other) == pid:  # servers lead their own process group
                leftovers.append(other)
        except ProcessLookupError:
            pass
    assert not leftovers, f"processes of group {pid} still alive: {leftovers}"
    assert not _port_open(port)


async def _pg_fetchval(url: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(url + "/postgres", timeout=TIMEOUT)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _pg_execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url + "/postgres", timeout=TIMEOUT)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


# --- PostgreSQL ------------------------------------------------------------------------


def test_postgres_answers_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    with EmbeddedPostgres(data_dir) as pg:
        assert pg.running
        assert pg.url == f"postgresql://postgres@127.0.0.1:{pg.port}"
        assert pg.port != 5432
        assert asyncio.run(_pg_fetchval(pg.url, "SELECT 1")) == 1
        assert asyncio.run(_pg_fetchval(pg.url, "SHOW max_connections")) == "300"
        assert asyncio.run(_pg_fetchval(pg.url, "SELECT current_setting('server_encoding')")) == "UTF8"
        asyncio.run(
            _pg_execute(
                pg.url,
                "CREATE TABLE kept (id int PRIMARY KEY, name text NOT NULL)",
                "INSERT INTO kept VALUES (1, 'crème brûlée')",
            )
        )
        first_pid, first_port = pg.pid, pg.port
        assert first_pid is not None

        pg.restart()
        assert pg.port == first_port, "a restart keeps the port it handed out"
        assert pg.pid != first_pid
        assert asyncio.run(_pg_fetchval(pg.url, "SELECT name FROM kept WHERE id = 1")) == "crème brûlée"
        second_pid = pg.pid
        assert second_pid is not None

    assert not pg.running
    assert not (data_dir / "postmaster.pid").exists(), "a clean stop removes the pid file"
    _assert_gone(second_pid, first_port)

    # A fresh object on the same directory finds the cluster instead of running initdb again.
    with EmbeddedPostgres(data_dir) as again:
        assert asyncio.run(_pg_fetchval(again.url, "SELECT count(*) FROM kept")) == 1
        pid, port = again.pid, again.port
        assert pid is not None
    _assert_gone(pid, port)
    assert (data_dir / "postgres.log").stat().st_size > 0


def test_postgres_starts_over_a_stale_pid_file(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg").start()
    try:
        asyncio.run(_pg_execute(pg.url, "CREATE TABLE t (v int)", "INSERT INTO t VALUES (7)"))
        killed_pid = pg.pid
        assert killed_pid is not None
        pg.kill()
        assert not pg.running
        assert (pg.data_dir / "postmaster.pid").exists(), "a killed server leaves its pid file"
        _assert_gone(killed_pid, pg.port)

        pg.start()  # the pid in the file is dead: it is removed and crash recovery runs
        assert asyncio.run(_pg_fetchval(pg.url, "SELECT v FROM t")) == 7
        pg.stop()

        # The pid in the file now belongs to another program (ours): still not a postgres.
        (pg.data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{pg.data_dir}\n")
        pg.start()
        assert asyncio.run(_pg_fetchval(pg.url, "SELECT v FROM t")) == 7
    finally:
        pg.stop()


def test_postgres_refuses_a_directory_a_live_server_uses(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "pg") as pg:
        other = EmbeddedPostgres(tmp_path / "pg", startup_timeout=0.5)
        with pytest.raises(EmbeddedServerError, match="in use by a running PostgreSQL"):
            other.start()
        assert not other.running
        assert asyncio.run(_pg_fetchval(pg.url, "SELECT 1")) == 1


def test_server_started_from_a_short_lived_thread_outlives_it(tmp_path: Path) -> None:
    """The parent-death signal is tied to the forking thread; the server must not die with it."""
    server = EmbeddedRedis(tmp_path / "redis")
    worker = threading.Thread(target=server.start)
    worker.start()
    worker.join(TIMEOUT)
    try:
        assert server.running
        client = redis.Redis.from_url(server.url, socket_timeout=TIMEOUT)
        try:
            assert client.ping() is True
        finally:
            client.close()
        assert server.running
    finally:
        server.stop()


# --- Redis -----------------------------------------------------------------------------


def test_redis_answers_and_stops_cleanly(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    with server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert server.port != 6379
        client = redis.Redis.from_url(server.url, socket_timeout=TIMEOUT)
        try:
            assert client.ping() is True
            client.set("greeting", "hello")
            assert client.get("greeting") == b"hello"
            assert client.config_get("save") == {"save": ""}
        finally:
            client.close()
        pid, port = server.pid, server.port
        assert pid is not None
        server.start()  # idempotent
        assert server.pid == pid

    assert not server.running
    _assert_gone(pid, port)
    assert (tmp_path / "redis" / "redis.log").stat().st_size > 0


def test_redis_comes_back_on_its_port_after_a_kill(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        port, pid = server.port, server.pid
        assert pid is not None
        server.kill()
        _assert_gone(pid, port)
        server.start()
        assert server.port == port
        client = redis.Redis.from_url(server.url, socket_timeout=TIMEOUT)
        try:
            assert client.ping() is True
        finally:
            client.close()
    finally:
        server.stop()


# --- the broker ------------------------------------------------------------------------


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def _list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for n in range(count):
            await producer.send_and_wait(topic, f"value-{n}".encode(), key=b"order-1", partition=0)
    finally:
        await producer.stop()


async def _consume(
    bootstrap: str, topic: str, count: int, group_id: str | None
) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        if group_id is None:
            consumer.assign([TopicPartition(topic, 0)])
        else:
            consumer.subscribe([topic])
        received = []
        while len(received) < count:
            message = await consumer.getone()
            received.append((message.key, message.value))
        if group_id is not None:
            await consumer.commit()
        return received
    finally:
        await consumer.stop()


async def _round_trip(
    bootstrap: str, topic: str, group_id: str | None
) -> list[tuple[bytes | None, bytes | None]]:
    await _create_topic(bootstrap, topic)
    await _produce(bootstrap, topic, 3)
    return await _consume(bootstrap, topic, 3, group_id)


EXPECTED = [(b"order-1", f"value-{n}".encode()) for n in range(3)]


def test_broker_carries_messages_and_stops_cleanly(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker")
    with broker:
        assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
        topic = f"embedded-{uuid.uuid4().hex[:8]}"
        # Through a consumer group (Tansu holds the first JoinGroup of a group for about 5 s).
        received = asyncio.run(
            asyncio.wait_for(_round_trip(broker.bootstrap_servers, topic, "embedded-test"), TIMEOUT)
        )
        assert received == EXPECTED
        pid, port = broker.pid, broker.port
        assert pid is not None

        broker.restart()  # same address; memory-only, so it forgot the topic
        assert broker.port == port
        assert topic not in asyncio.run(asyncio.wait_for(_list_topics(broker.bootstrap_servers), TIMEOUT))
        received = asyncio.run(asyncio.wait_for(_round_trip(broker.bootstrap_servers, topic, None), TIMEOUT))
        assert received == EXPECTED
        last_pid = broker.pid
        assert last_pid is not None

    assert not broker.running
    _assert_gone(pid, port)
    _assert_gone(last_pid, port)
    assert "listening on" in (tmp_path / "broker" / "broker.log").read_text()


# --- dying with the parent -------------------------------------------------------------

_ORPHAN_SCRIPT = """
import sys, threading, time
from servicekit.embedded import EmbeddedRedis
server = EmbeddedRedis(sys.argv[1])
threading.Thread(target=server.start).start()
while not server.running:
    time.sleep(0.01)
print(server.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_servers_die_with_a_killed_parent(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(tmp_path / "redis")],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert parent.stdout is not None
        child = psutil.Process(int(parent.stdout.readline()))
        assert child.is_running()
    finally:
        parent.kill()
        parent.wait()
    child.wait(TIMEOUT)  # raises psutil.TimeoutExpired if the server outlived its parent
    assert not psutil.pid_exists(child.pid)
