"""Reading results.json: each scenario's levels, its baseline, throughput, CPU per unit of work, peak memory."""

from __future__ import annotations

from typing import Any

# Each scenario's baseline: what the same work costs without the platform around it.
BASELINE_OF = {
    "browse": "hello",
    "search": "hello",
    "browse_uncached": "hello",
    "search_uncached": "hello",
    "me": "hello",
    "mix": "hello",
    "login": "bcrypt",
    "checkout": "grpc_echo",
}
BASELINE_NAMES = {
    "hello": "bare ASGI hello (uvicorn + uvloop + httptools)",
    "grpc_echo": "bare grpc.aio unary echo",
    "asyncpg": "asyncpg primary-key select loop",
    "bcrypt": "raw bcrypt verifications",
}
# Processes held to the memory goal: the platform's, not the load generator or this runner.
NOT_PLATFORM = {"k6", "bench (mailbox)", "hello", "grpc_echo"}
RSS_LIMIT_MB = 200.0


def scenario_levels(results: dict[str, Any], scenario: str) -> list[tuple[int, dict[str, Any]]]:
    entry = results.get("scenarios", {}).get(scenario, {})
    return sorted(((int(v), row) for v, row in entry.get("levels", {}).items()), key=lambda item: item[0])


def baseline_rate(results: dict[str, Any], scenario: str, vus: int) -> tuple[str, float | None]:
    kind = BASELINE_OF[scenario]
    baseline = results.get("baselines", {}).get(kind)
    if not baseline:
        return kind, None
    if "per_second" in baseline:
        return kind, baseline["per_second"]
    rows = baseline.get("levels", {})
    row = rows.get(str(vus)) or (rows[max(rows, key=int)] if rows else None)
    return kind, row["requests_per_second"] if row else None


def throughput(scenario: str, row: dict[str, Any]) -> float:
    """The scenario's figure of merit: orders confirmed per second for checkout, requests otherwise."""
    if scenario == "checkout" and "orders" in row:
        return float(row["orders"]["confirmed_per_second"])
    return float(row["requests_per_second"])


def cpu_per_unit(scenario: str, row: dict[str, Any]) -> dict[str, float]:
    """Milliseconds of CPU each measured process (k6 included) spent per request, or per order
    confirmed for checkout, during one level's measured run; busiest first, with "total"."""
    rate = throughput(scenario, row)
    if rate <= 0:
        return {}
    spent = {n: p["cpu_percent"] * 10.0 / rate for n, p in row.get("processes", {}).items()}
    spent = dict(sorted(spent.items(), key=lambda item: -item[1]))
    spent["total"] = sum(spent.values())
    return spent


def peak_rss(results: dict[str, Any]) -> dict[str, float]:
    """Peak RSS (MB) of each process over every scenario run (the largest single process of a group)."""
    peaks: dict[str, float] = {}
    for scenario in results.get("scenarios", {}):
        for _, row in scenario_levels(results, scenario):
            for name, usage in row.get("processes", {}).items():
                peaks[name] = max(peaks.get(name, 0.0), usage["peak_rss_mb"])
    return dict(sorted(peaks.items(), key=lambda item: -item[1]))
