"""From results.json to report.md and PNG charts: the tables, the goals of the issue, what bounds what."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

# Each scenario's baseline: what the same work costs without the platform around it.
BASELINE_OF = {
    "browse": "hello",
    "search": "hello",
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
NOT_MEASURED_ROW = "not yet measured on a quiet machine"


# --- reading results ---------------------------------------------------------------------------------


def _levels(results: dict[str, Any], scenario: str) -> list[tuple[int, dict[str, Any]]]:
    entry = results.get("scenarios", {}).get(scenario, {})
    return sorted(((int(v), row) for v, row in entry.get("levels", {}).items()), key=lambda item: item[0])


def _baseline_rate(results: dict[str, Any], scenario: str, vus: int) -> tuple[str, float | None]:
    kind = BASELINE_OF[scenario]
    baseline = results.get("baselines", {}).get(kind)
    if not baseline:
        return kind, None
    if "per_second" in baseline:
        return kind, baseline["per_second"]
    rows = baseline.get("levels", {})
    row = rows.get(str(vus)) or (rows[max(rows, key=int)] if rows else None)
    return kind, row["requests_per_second"] if row else None


def _throughput(scenario: str, row: dict[str, Any]) -> float:
    """The scenario's figure of merit: orders accepted per second for checkout, requests otherwise."""
    if scenario == "checkout" and "orders" in row:
        return float(row["orders"]["accepted_per_second"])
    return float(row["requests_per_second"])


def cpu_per_unit(scenario: str, row: dict[str, Any]) -> dict[str, float]:
    """Milliseconds of CPU each measured process (k6 included) spent per request, or per order
    accepted for checkout, during one level's measured run; busiest first, with "total"."""
    rate = _throughput(scenario, row)
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
        for _, row in _levels(results, scenario):
            for name, usage in row.get("processes", {}).items():
                peaks[name] = max(peaks.get(name, 0.0), usage["peak_rss_mb"])
    return dict(sorted(peaks.items(), key=lambda item: -item[1]))


# --- goals ---------------------------------------------------------------------------------------------


def _pct(value: float, target: float) -> str:
    return f"{abs(value - target) / target * 100:.0f}%"


def _rate_goal(
    results: dict[str, Any], scenario: str, goal: str, *, min_rate: float, max_p95: float, saga: bool = False
) -> dict[str, Any]:
    unit = "orders/s" if saga else "req/s"
    levels = _levels(results, scenario)
    if not levels:
        return {"goal": goal, "status": "not measured", "measured": "", "by": ""}

    def p95(row: dict[str, Any]) -> float:
        if saga:
            return float(row.get("orders", {}).get("saga_ms", {}).get("p95", float("inf")) or float("inf"))
        return float(row["latency_ms"]["p95"])

    passing = [(v, r) for v, r in levels if _throughput(scenario, r) >= min_rate and p95(r) < max_p95]
    vus, row = max(passing or levels, key=lambda item: _throughput(scenario, item[1]))
    rate, latency = _throughput(scenario, row), p95(row)
    label = "saga p95" if saga else "p95"
    measured = f"{rate:,.0f} {unit}, {label} {latency:,.0f} ms at {vus} VUs"
    if passing:
        return {"goal": goal, "status": "pass", "measured": measured, "by": f"{_pct(rate, min_rate)} above"}
    shortfalls = []
    if rate < min_rate:
        shortfalls.append(f"throughput {_pct(rate, min_rate)} short ({rate:,.0f} of {min_rate:,.0f} {unit})")
    if latency >= max_p95:
        shortfalls.append(f"{label} {latency - max_p95:,.0f} ms over ({latency:,.0f} vs < {max_p95:,.0f} ms)")
    spent = cpu_per_unit(scenario, row).get("total")
    cpus = results.get("machine", {}).get("cpus")
    if rate < min_rate and spent and cpus:
        per = "order" if saga else "request"
        shortfalls.append(
            f"the goal leaves {cpus * 1000 / min_rate:,.2f} ms of CPU per {per} on {cpus} cores, "
            f"and one took {spent:,.2f} ms across the platform and k6"
        )
    if not shortfalls:
        shortfalls.append("no single level meets both at once")
    return {"goal": goal, "status": "miss", "measured": measured, "by": "; ".join(shortfalls)}


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals for a 2-core machine, each with pass/miss and by how much."""
    rows = [
        _rate_goal(results, "browse", "browse ≥ 1,200 req/s with p95 < 50 ms", min_rate=1200, max_p95=50),
        _rate_goal(
            results,
            "search",
            "search over 100k products ≥ 800 req/s with p95 < 50 ms",
            min_rate=800,
            max_p95=50,
        ),
        _rate_goal(
            results,
            "checkout",
            "checkout ≥ 300 orders/s accepted with saga p95 < 500 ms",
            min_rate=300,
            max_p95=500,
            saga=True,
        ),
    ]
    # login at 90% of the raw bcrypt rate
    login = _levels(results, "login")
    bcrypt = results.get("baselines", {}).get("bcrypt", {}).get("per_second")
    goal = "login ≥ 90% of the raw bcrypt rate"
    if login and bcrypt:
        vus, row = max(login, key=lambda item: item[1]["requests_per_second"])
        ratio = row["requests_per_second"] / bcrypt
        measured = (
            f"{row['requests_per_second']:,.1f} logins/s = {ratio:.0%} of {bcrypt:,.1f} bcrypt/s at {vus} VUs"
        )
        status = "pass" if ratio >= 0.9 else "miss"
        by = f"{abs(ratio - 0.9) * 100:.0f} points {'above' if status == 'pass' else 'short'}"
        rows.append({"goal": goal, "status": status, "measured": measured, "by": by})
    else:
        rows.append({"goal": goal, "status": "not measured", "measured": "", "by": ""})
    broker = results.get("broker", {}).get("end_to_end_per_second")
    goal = "3,000 events/s through the broker"
    if broker:
        status = "pass" if broker >= 3000 else "miss"
        rows.append(
            {
                "goal": goal,
                "status": status,
                "measured": f"{broker:,.0f} events/s (produce and consume, end to end)",
                "by": f"{_pct(broker, 3000)} {'above' if status == 'pass' else 'short'}",
            }
        )
    else:
        rows.append({"goal": goal, "status": "not measured", "measured": "", "by": ""})
    peaks = {name: mb for name, mb in peak_rss(results).items() if name not in NOT_PLATFORM}
    goal = "every process under 200 MB RSS"
    if peaks:
        name, largest = max(peaks.items(), key=lambda item: item[1])
        over = {n: mb for n, mb in peaks.items() if mb >= RSS_LIMIT_MB}
        status = "miss" if over else "pass"
        by = (
            ", ".join(f"{n} {mb - RSS_LIMIT_MB:,.0f} MB over" for n, mb in over.items())
            if over
            else f"{RSS_LIMIT_MB - largest:,.0f} MB to spare"
        )
        rows.append(
            {"goal": goal, "status": status, "measured": f"largest: {name} {largest:,.0f} MB", "by": by}
        )
    else:
        rows.append({"goal": goal, "status": "not measured", "measured": "", "by": ""})
    return rows


# --- what the errors were -------------------------------------------------------------------------------

# A k6 warning of lib.js: `msg="<op>: HTTP <status> <the start of the body>"`, the body's quotes escaped.
_K6_FAILURE = re.compile(r'msg="(?P<op>[\w ]+): HTTP (?P<status>\d+) (?P<body>.*)"?$')
_ERROR_CODE = re.compile(r'\\"code\\":\\"(?P<code>\w+)\\"')
_ERROR_MESSAGE = re.compile(r'\\"message\\":\\"(?P<message>[^\\]*)\\"')


def error_samples(row: dict[str, Any]) -> list[tuple[str, int]]:
    """What the failed requests k6 printed (a sample: the first few of each virtual user) said, as
    `op: HTTP status CODE (message)` with how many times, most frequent first."""
    seen: Counter[str] = Counter()
    for line in row.get("k6_messages", ()):
        failure = _K6_FAILURE.search(line)
        if failure is None:
            continue
        body = failure["body"]
        code = _ERROR_CODE.search(body)
        message = _ERROR_MESSAGE.search(body)
        text = f"{failure['op']}: HTTP {failure['status']}"
        if code:
            text += f" {code['code']}"
        if message:
            text += f" ({message['message']})"
        seen[text] += 1
    return seen.most_common()


# --- what bounds each scenario ---------------------------------------------------------------------------


def _describe(name: str) -> str:
    return {
        "postgres": "PostgreSQL (the database)",
        "broker": "the broker",
        "redis": "Redis",
        "gateway": "the gateway's Python process (GraphQL parsing, validation, execution)",
        "k6": "the load generator",
    }.get(name, f"the {name} service's Python process")


# A process running one event loop past this share of its core is what the others wait for: its
# requests queue behind one another long before it reaches 100% (and sampling rounds down).
ONE_LOOP_BUSY = 80


def bounds(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per scenario, at its highest level: CPU% per process and the likely bound."""
    cpus = results.get("machine", {}).get("cpus") or 1
    capacity = 100.0 * cpus
    out: dict[str, dict[str, Any]] = {}
    for scenario in results.get("scenarios", {}):
        levels = _levels(results, scenario)
        if not levels:
            continue
        vus, row = levels[-1]
        processes = row.get("processes", {})
        ours = sum(p["cpu_percent"] for p in processes.values())
        # The whole machine, when measured: other programs running at the same time count against us too.
        total = max(ours, row.get("machine_cpu_percent", 0.0))
        others = total - ours
        platform = {n: p["cpu_percent"] for n, p in processes.items() if n not in NOT_PLATFORM}
        if not platform:
            continue
        busiest, busiest_cpu = max(platform.items(), key=lambda item: item[1])
        k6 = processes.get("k6", {}).get("cpu_percent", 0.0)
        if scenario == "login" and busiest == "account":
            _, rate = _baseline_rate(results, "login", vus)
            share = f" ({row['requests_per_second'] / rate:.0%} of the raw bcrypt rate)" if rate else ""
            verdict = f"bcrypt in the account service: {busiest_cpu:.0f}% CPU{share}"
        elif total >= 0.85 * capacity:
            verdict = (
                f"CPU: the machine is saturated ({total:.0f}% of {capacity:.0f}%); the largest share is "
                f"{_describe(busiest)} at {busiest_cpu:.0f}%, and k6 itself takes {k6:.0f}%"
            )
            if others >= 0.2 * capacity:
                verdict += f"; programs outside the benchmark took {others:.0f}%: rerun on a quiet machine"
            if busiest != "postgres" and busiest_cpu >= ONE_LOOP_BUSY:
                verdict += f"; {busiest} runs one event loop, so it cannot use more than one core"
        elif busiest_cpu >= ONE_LOOP_BUSY and busiest != "postgres":
            verdict = (
                f"one core: {_describe(busiest)} is at {busiest_cpu:.0f}% (a single event loop) while the "
                f"machine is at {total:.0f}% of {capacity:.0f}%"
            )
        else:
            waiting = (
                "the saga's hops (outbox relay, broker round trips, consumers), which createOrder waits for"
                if scenario in ("checkout", "mix")
                else "round trips between processes and the database"
            )
            verdict = (
                f"not CPU-bound ({total:.0f}% of {capacity:.0f}%, busiest {busiest} at {busiest_cpu:.0f}%): "
                f"time goes to waiting on {waiting}"
            )
        out[scenario] = {
            "vus": vus,
            "total_cpu_percent": round(total, 1),
            "outside_cpu_percent": round(others, 1),
            "capacity_percent": capacity,
            "busiest": busiest,
            "busiest_cpu_percent": busiest_cpu,
            "verdict": verdict,
        }
    return out


# --- charts --------------------------------------------------------------------------------------------


def charts(results: dict[str, Any], out: Path) -> list[str]:
    """throughput.png, latency.png and memory.png; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    written = []
    names = [s for s in results.get("scenarios", {}) if _levels(results, s)]
    names += [b for b in ("hello", "grpc_echo") if results.get("baselines", {}).get(b, {}).get("levels")]
    if not names:
        return written

    def rows_of(name: str) -> list[tuple[int, dict[str, Any]]]:
        if name in results.get("scenarios", {}):
            return _levels(results, name)
        rows = results["baselines"][name]["levels"]
        return sorted(((int(v), r) for v, r in rows.items()), key=lambda item: item[0])

    levels = sorted({vus for name in names for vus, _ in rows_of(name)})
    width = 0.8 / max(len(levels), 1)

    fig, ax = plt.subplots(figsize=(11, 5))
    for i, vus in enumerate(levels):
        values = [next((r["requests_per_second"] for v, r in rows_of(n) if v == vus), 0) for n in names]
        positions = [x + (i - (len(levels) - 1) / 2) * width for x in range(len(names))]
        bars = ax.bar(positions, values, width, label=f"{vus} VUs")
        ax.bar_label(
            bars, labels=[f"{v:,.0f}" if v else "" for v in values], fontsize=7, rotation=90, padding=2
        )
    ax.set_xticks(range(len(names)), names)
    ax.set_yscale("log")
    ax.set_ylabel("requests per second (log scale)")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set_title(
        f"Throughput per scenario and baseline ({results.get('date', '')}, {results.get('mode', '')})"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)
    written.append("throughput.png")

    scenarios = [s for s in names if s in results.get("scenarios", {})]
    if scenarios:
        fig, ax = plt.subplots(figsize=(11, 5))
        labels, p50, p95, p99 = [], [], [], []
        for name in scenarios:
            for vus, row in rows_of(name):
                labels.append(f"{name}\n{vus} VUs")
                p50.append(row["latency_ms"]["p50"])
                p95.append(row["latency_ms"]["p95"])
                p99.append(row["latency_ms"]["p99"])
        x = range(len(labels))
        for offset, values, label in ((-0.27, p50, "p50"), (0.0, p95, "p95"), (0.27, p99, "p99")):
            ax.bar([i + offset for i in x], [max(v, 0.01) for v in values], 0.27, label=label)
        ax.axhline(50, color="grey", linestyle="--", linewidth=1, label="50 ms goal (browse, search)")
        ax.set_xticks(list(x), labels, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("milliseconds (log scale)")
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.set_title("Request latency per scenario")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=110)
        plt.close(fig)
        written.append("latency.png")

    peaks = peak_rss(results)
    if peaks:
        fig, ax = plt.subplots(figsize=(10, 4.5))
        items = list(peaks.items())
        bars = ax.barh([n for n, _ in items], [mb for _, mb in items])
        ax.bar_label(bars, labels=[f"{mb:,.0f}" for _, mb in items], fontsize=8, padding=2)
        ax.axvline(RSS_LIMIT_MB, color="grey", linestyle="--", linewidth=1, label="200 MB goal")
        ax.invert_yaxis()
        ax.set_xlabel("peak RSS of the largest single process, MB")
        ax.set_title("Peak memory per process over all scenarios")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "memory.png", dpi=110)
        plt.close(fig)
        written.append("memory.png")
    return written


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
        for vus, row in _levels(results, scenario):
            kind, rate = _baseline_rate(results, scenario, vus)
            ratio = f"{_throughput(scenario, row) / rate:.2f}x {kind}" if rate else "-"
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
    "checkout",
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
        + ". Logging stays at its default (one JSON line per RPC)."
    )
    parts.append("## Results")
    parts.append(_table(SUMMARY_HEADER, summary_rows(results)))
    parts.append(
        "`req/s` counts every HTTP request of the scenario (for checkout, one `createOrder` per order, which "
        "waits for the saga); "
        "latencies are of all its requests; a GraphQL answer with `errors` counts as an error. `vs baseline` "
        "divides the scenario's throughput (orders accepted per second for checkout) by its baseline's at the "
        "same concurrency: the ASGI hello for the GraphQL reads, raw bcrypt for login, the gRPC echo for checkout."
    )
    per_op = []
    for scenario in results.get("scenarios", {}):
        for vus, row in _levels(results, scenario):
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
        for vus, row in _levels(results, scenario)
        if row.get("errors")
    ]
    if failed:
        parts.append("### Errors")
        parts.append(
            "What the failed requests answered, from the first few each virtual user printed "
            "(`SERVICE_UNAVAILABLE`: the gateway's deadline for the call passed, the service being busy)."
        )
        parts.append(_table(["scenario", "VUs", "errors", "what they said (sample)"], failed))
    checkout = [(s, v, r) for s in ("checkout", "mix") for v, r in _levels(results, s) if "orders" in r]
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
            "seen by the shopper runs from sending createOrder to its answer, which waits for the saga "
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
        for v, r in _levels(results, s)
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
            level = _levels(results, scenario)[-1][1]
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
        for v, r in _levels(results, s)
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
