"""From results.json to report.md and PNG charts: the tables, the goals of the issue, what bounds what.

This module writes the markdown (report.md and the README's table); the numbers it reads come from
readings.py, the goals from goals.py, the bounds and error samples from diagnosis.py and the PNGs from
charts.py, all of them also importable from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.charts import charts
from bench.diagnosis import bounds, error_samples
from bench.goals import goals
from bench.readings import BASELINE_NAMES, baseline_rate, cpu_per_unit, peak_rss, scenario_levels, throughput

NOT_MEASURED_ROW = "not yet measured on a quiet machine"


# --- markdown ------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per scenario and level: the table the README shows."""
    rows = []
    for scenario in results.get("scenarios", {}):
        for vus, row in scenario_levels(results, scenario):
            kind, rate = baseline_rate(results, scenario, vus)
            ratio = f"{throughput(scenario, row) / rate:.2f}x {kind}" if rate else "-"
            latency = row["latency_ms"]
            extra = ""
            if "orders" in row:
                orders = row["orders"]
                extra = (
                    f"{_n(orders['accepted_per_second'], 1)} accepted/s, {_n(orders['confirmed_per_second'], 1)} "
                    f"confirmed/s, saga p50/p95 {_n(orders['saga_ms']['p50'])}/{_n(orders['saga_ms']['p95'])} ms"
                )
            rows.append(
                [
                    scenario,
                    str(vus),
                    _n(row["requests_per_second"], 1),
                    _n(latency["p50"], 1),
                    _n(latency["p95"], 1),
                    _n(latency["p99"], 1),
                    f"{row['error_rate']:.2%}",
                    ratio,
                    cache_cell(row),
                    extra,
                ]
            )
    return rows


SUMMARY_HEADER = [
    "scenario",
    "VUs",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "errors",
    "vs baseline",
    "cache hits",
    "checkout",
]


def cache_cell(row: dict[str, Any]) -> str:
    """The response cache's hit ratio over a measured run: "off", a percentage, or "-" (no lookups)."""
    cache = row.get("response_cache")
    if not cache:
        return "-"
    if not cache.get("enabled"):
        return "off"
    ratio = cache.get("hit_ratio")
    return "-" if ratio is None else f"{ratio:.1%}"


def rpc_rows(rpcs: dict[str, dict[str, int]]) -> list[list[str]]:
    """One row per process and gRPC service: its RPCs and its share of that service's RPCs."""
    totals: dict[str, int] = {}
    for by_service in rpcs.values():
        for service, count in by_service.items():
            totals[service] = totals.get(service, 0) + count
    return [
        [process, service, _n(count), f"{100 * count / totals[service]:.0f}%" if totals[service] else "-"]
        for process, by_service in rpcs.items()
        for service, count in by_service.items()
    ]


def markdown(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    config = results.get("config", {})
    seed = results.get("seed", {})
    parts = [f"# Benchmark report, {results.get('date', '')}"]
    if results.get("mode") == "smoke":
        parts.append(
            "> **Smoke mode**: seconds per scenario, a small catalog and bcrypt cost "
            f"{results.get('settings', {}).get('ACCOUNT_BCRYPT_ROUNDS', '?')}. It proves the benchmark runs; "
            "its figures mean nothing."
        )
    parts.append(
        f"Machine: {machine.get('cpus', '?')} cores ({machine.get('cpu_model', '?')}), "
        f"{machine.get('memory_gb', '?')} GB, {machine.get('os', '')}; Python {machine.get('python', '?')}, "
        f"PostgreSQL {machine.get('postgres', '?')}, {machine.get('k6', 'k6')}. Load average at start: "
        f"{machine.get('load_average_at_start', '?')}. The load generator (k6) runs on the same machine. "
        f"The run took {results.get('seconds', '?')} s."
    )
    load = machine.get("load_average_at_start") or [0.0]
    if load[0] > 0.5 * (machine.get("cpus") or 1):
        parts.append(
            f"> **The machine was busy when the run started** (load average {load[0]:.2f} on "
            f"{machine.get('cpus')} cores): the figures below are lower than a quiet machine gives."
        )
    parts.append("## Setup")
    settings = results.get("settings", {})
    budget = results.get("budget_settings", {})
    parts.append(
        "The platform runs on the embedded default (PostgreSQL, Redis, the Tansu broker, the local SMTP "
        f"mailbox) with every service ({', '.join(results.get('services', []))}) and the gateway in its own "
        f"process, in a fresh data directory. Catalog: {_n(seed.get('products', 0))} products loaded in "
        f"{seed.get('seconds', '?')} s (one COPY into the catalog's table, indexes rebuilt, ANALYZE); "
        f"{seed.get('shoppers', 0)} shoppers registered through GraphQL in {seed.get('shoppers_seconds', '?')} s. "
        f"Each scenario runs {config.get('duration_s')} s at each level after a discarded "
        f"{config.get('warmup_s')} s warm-up at its highest level."
    )
    parts.append(
        "**Per-caller cost budgets are raised for the benchmark** (every k6 virtual user shares one client "
        "address, so the gateway's leaky bucket would otherwise be what is measured): "
        + ", ".join(f"`{k}={v}`" for k, v in budget.items())
        + ". The other settings the bench changes: "
        + ", ".join(f"`{k}={v}`" for k, v in settings.items() if k not in budget)
        + ". Access lines are written for failed requests only (`LOG_ACCESS=errors`)."
    )
    parts.append("## Results")
    parts.append(_table(SUMMARY_HEADER, summary_rows(results)))
    parts.append(
        "`req/s` counts every HTTP request of the scenario (for checkout, the cart's requests and one `checkout` "
        "per order, which waits for the saga; one `createOrder` with CHECKOUT_FLOW=createOrder); "
        "latencies are of all its requests; a GraphQL answer with `errors` counts as an error. `vs baseline` "
        "divides the scenario's throughput (orders accepted per second for checkout) by its baseline's at the "
        "same concurrency: the ASGI hello for the GraphQL reads, raw bcrypt for login, the gRPC echo for checkout. "
        "`cache hits` is the share of the gateway's response cache lookups answered from it during the run "
        "(`off`: the `_uncached` runs, browse and search again with `GATEWAY_RESPONSE_CACHE=false`); browse and "
        "search ask for popular categories, sorts, terms and products more often (Zipf, exponent 1), and in mix "
        "the checkouts change stock while they do."
    )
    per_op = []
    for scenario in results.get("scenarios", {}):
        for vus, row in scenario_levels(results, scenario):
            for op, latency in row.get("operations", {}).items():
                per_op.append(
                    [scenario, vus, op, _n(latency["p50"], 1), _n(latency["p95"], 1), _n(latency["p99"], 1)]
                )
    if per_op:
        parts.append("### Latency per operation")
        parts.append(_table(["scenario", "VUs", "operation", "p50 ms", "p95 ms", "p99 ms"], per_op))
    failed = [
        [
            scenario,
            vus,
            _n(row["errors"]),
            "; ".join(f"{text}: {count}" for text, count in error_samples(row)),
        ]
        for scenario in results.get("scenarios", {})
        for vus, row in scenario_levels(results, scenario)
        if row.get("errors")
    ]
    if failed:
        parts.append("### Errors")
        parts.append(
            "What the failed requests answered, from the first few each virtual user printed "
            "(`SERVICE_UNAVAILABLE`: the gateway's deadline for the call passed, the service being busy)."
        )
        parts.append(_table(["scenario", "VUs", "errors", "what they said (sample)"], failed))
    checkout = [
        (s, v, r) for s in ("checkout", "mix") for v, r in scenario_levels(results, s) if "orders" in r
    ]
    if checkout:
        parts.append("### Checkout: orders and the saga")
        parts.append(
            _table(
                [
                    "scenario",
                    "VUs",
                    "accepted/s",
                    "confirmed/s",
                    "not confirmed",
                    "saga p50 ms",
                    "saga p95 ms",
                    "seen by shopper p95 ms",
                ],
                [
                    [
                        s,
                        v,
                        _n(r["orders"]["accepted_per_second"], 1),
                        _n(r["orders"]["confirmed_per_second"], 1),
                        r["orders"]["not_confirmed"],
                        _n(r["orders"]["saga_ms"]["p50"]),
                        _n(r["orders"]["saga_ms"]["p95"]),
                        _n(r["orders"]["saga_observed_ms"]["p95"]),
                    ]
                    for s, v, r in checkout
                ],
            )
        )
        parts.append(
            "The saga time is the order's own history, from PENDING to CONFIRMED (server clock); the time "
            "seen by the shopper runs from sending checkout (or createOrder) to its answer, which waits for the saga "
            "(`waitSeconds`) and answers CONFIRMED."
        )
    parts.append("## Baselines")
    baseline_rows = []
    for kind, data in results.get("baselines", {}).items():
        if "levels" in data:
            for vus, row in sorted(data["levels"].items(), key=lambda item: int(item[0])):
                baseline_rows.append(
                    [
                        BASELINE_NAMES[kind],
                        f"{vus} VUs",
                        f"{_n(row['requests_per_second'])} req/s",
                        _n(row["latency_ms"]["p95"], 2),
                    ]
                )
        else:
            detail = (
                f"{data.get('concurrency')} connections"
                if kind == "asyncpg"
                else f"cost {data.get('rounds')}, {data.get('threads')} threads"
            )
            baseline_rows.append([BASELINE_NAMES[kind], detail, f"{_n(data['per_second'], 1)}/s", "-"])
    parts.append(_table(["baseline", "at", "rate", "p95 ms"], baseline_rows))
    broker = results.get("broker")
    parts.append("## Events through the broker")
    if broker:
        parts.append(
            f"{_n(broker['events'])} envelopes of {broker['envelope_bytes']} bytes (an `order.status_changed` "
            f"event) produced with the services' producer settings (acks=all, linger 2 ms) while a consumer read "
            f"them back: **{_n(broker['end_to_end_per_second'])} events/s end to end**, "
            f"{_n(broker['produce_per_second'])}/s acknowledged to the producer."
        )
    events = [
        [
            s,
            v,
            _n(r["events"]["per_second"], 1),
            ", ".join(f"{t} {n}" for t, n in r["events"]["per_topic"].items()),
        ]
        for s in results.get("scenarios", {})
        for v, r in scenario_levels(results, s)
        if r.get("events", {}).get("total")
    ]
    if events:
        parts.append("Events the platform published during each run (end offsets of every topic):")
        parts.append(_table(["scenario", "VUs", "events/s", "per topic"], events))
    parts.append("## Peak memory (RSS)")
    peaks = peak_rss(results)
    if peaks:
        parts.append(
            _table(["process", "peak RSS MB"], [[n, _n(mb, 1)] for n, mb in peaks.items()])
            + "\n\nFor PostgreSQL the largest single process (its backends share the buffer cache). "
            "`bench (mailbox)` is this runner, which also hosts the SMTP mailbox."
        )
    parts.append("## What bounds each scenario")
    found = results.get("bounds", {})
    if found:
        parts.append(
            "CPU% is CPU time over wall time during the measured run at the highest level (100% = one core); "
            "the busiest process is the likely bound. `outside CPU%` is what programs other than the platform, "
            "k6 and this runner used meanwhile: on a quiet machine it is near zero."
        )
        rows = []
        for scenario, bound in found.items():
            level = scenario_levels(results, scenario)[-1][1]
            top = ", ".join(
                f"{n} {p['cpu_percent']:.0f}%" for n, p in list(level.get("processes", {}).items())[:6]
            )
            spent = cpu_per_unit(scenario, level)
            per_unit = ", ".join(f"{n} {ms:,.2f}" for n, ms in list(spent.items())[:4])
            if spent:
                per_unit += f"; total {spent['total']:,.2f}"
            rows.append(
                [
                    scenario,
                    bound["vus"],
                    top,
                    per_unit,
                    _n(bound.get("outside_cpu_percent", 0.0)),
                    bound["verdict"],
                ]
            )
        parts.append(
            _table(
                ["scenario", "VUs", "CPU% (busiest first)", "CPU ms per request", "outside CPU%", "bound"],
                rows,
            )
        )
        parts.append(
            "`CPU ms per request` is each process's CPU time divided by the requests it served (for "
            "checkout: by the orders accepted), k6 included. A goal of N per second on this machine "
            "leaves (cores x 1,000 / N) ms for all of them together; the Goals table compares the two."
        )
    parts.append("## Goals")
    parts.append(
        _table(
            ["goal", "measured", "result", "by"],
            [[g["goal"], g["measured"], g["status"].upper(), g["by"]] for g in results.get("goals", [])],
        )
    )
    profiles = [
        (s, v, name, file)
        for s in results.get("scenarios", {})
        for v, r in scenario_levels(results, s)
        for name, file in r.get("profiles", {}).items()
    ]
    if profiles:
        parts.append("## Profiles")
        parts.append(
            "\n".join(
                f"- {s} at {v} VUs, {name}: " + (f"[{file}]({file})" if file.endswith(".svg") else file)
                for s, v, name, file in profiles
            )
        )
    if results.get("rpcs_per_process"):
        parts.append("## RPCs per process")
        parts.append(
            f"Each service ran as {results.get('replicas', 1)} process(es); the RPCs each one answered "
            "over the whole run (its own `grpc_server_handled_total`, health checks left out), and its "
            "share of its service's."
        )
        parts.append(
            _table(["process", "gRPC service", "RPCs", "share"], rpc_rows(results["rpcs_per_process"]))
        )
    if results.get("charts"):
        parts.append("## Charts")
        parts.append("\n\n".join(f"![{c}]({c})" for c in results["charts"]))
    if results.get("failures"):
        parts.append("## Failures")
        parts.append("\n".join(f"- {f}" for f in results["failures"]))
    return "\n\n".join(parts) + "\n"


README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def readme_table(results: dict[str, Any]) -> str:
    """The README's table of the latest results, then the goals, one line each."""
    machine = results.get("machine", {})
    goals_lines = "\n".join(
        f"- {g['goal']}: **{g['status'].upper()}**" + (f", {g['measured']}" if g["measured"] else "")
        for g in results.get("goals", [])
    )
    return (
        _table(SUMMARY_HEADER, summary_rows(results))
        + f"\n\nMeasured {results.get('date', '')} on {machine.get('cpus', '?')} cores "
        f"({machine.get('cpu_model', '?')}) with {_n(results.get('seed', {}).get('products', 0))} products; "
        f"the full report was written to `bench/results/{results.get('date', '')}/`. Goals:\n\n{goals_lines}"
    )


def update_docs(readme: Path, results: dict[str, Any]) -> bool:
    """Replace the table between the bench markers of the README; False when the markers are missing."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    readme.write_text(text[: start + len(README_START)] + "\n" + readme_table(results) + "\n" + text[end:])
    return True


__all__ = [
    "README_END",
    "README_START",
    "SUMMARY_HEADER",
    "bounds",
    "charts",
    "cpu_per_unit",
    "error_samples",
    "goals",
    "markdown",
    "peak_rss",
    "readme_table",
    "summary_rows",
    "update_docs",
]
