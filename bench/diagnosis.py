"""What went wrong or held a run back: what the failed requests said, and what bounds each scenario."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from bench.readings import NOT_PLATFORM, baseline_rate, scenario_levels

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
        levels = scenario_levels(results, scenario)
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
            _, rate = baseline_rate(results, "login", vus)
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
                "the saga's hops (outbox relay, broker round trips, consumers), which checkout waits for"
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
