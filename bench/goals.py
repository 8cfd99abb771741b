"""The issue's goals for a 2-core machine, judged on results.json: pass or miss, and by how much."""

from __future__ import annotations

from typing import Any

from bench.readings import NOT_PLATFORM, RSS_LIMIT_MB, cpu_per_unit, peak_rss, scenario_levels, throughput


def _pct(value: float, target: float) -> str:
    return f"{abs(value - target) / target * 100:.0f}%"


def _rate_goal(
    results: dict[str, Any], scenario: str, goal: str, *, min_rate: float, max_p95: float, saga: bool = False
) -> dict[str, Any]:
    unit = "orders/s" if saga else "req/s"
    levels = scenario_levels(results, scenario)
    if not levels:
        return {"goal": goal, "status": "not measured", "measured": "", "by": ""}

    def p95(row: dict[str, Any]) -> float:
        if saga:
            return float(row.get("orders", {}).get("saga_ms", {}).get("p95", float("inf")) or float("inf"))
        return float(row["latency_ms"]["p95"])

    passing = [(v, r) for v, r in levels if throughput(scenario, r) >= min_rate and p95(r) < max_p95]
    vus, row = max(passing or levels, key=lambda item: throughput(scenario, item[1]))
    rate, latency = throughput(scenario, row), p95(row)
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


def _saga_latency_goal(results: dict[str, Any]) -> dict[str, Any]:
    """The saga's p95 (PENDING to CONFIRMED) at 8 virtual users, where the machine is not saturated."""
    goal = "checkout saga p95 < 250 ms at 8 VUs"
    row = dict(scenario_levels(results, "checkout")).get(8)
    saga = (row or {}).get("orders", {}).get("saga_ms", {})
    if not saga.get("p95"):
        return {"goal": goal, "status": "not measured", "measured": "", "by": ""}
    p95 = float(saga["p95"])
    status = "pass" if p95 < 250 else "miss"
    by = f"{abs(250 - p95):,.0f} ms {'under' if status == 'pass' else 'over'}"
    return {"goal": goal, "status": status, "measured": f"saga p95 {p95:,.0f} ms at 8 VUs", "by": by}


def _order_cpu_goal(results: dict[str, Any]) -> dict[str, Any]:
    """CPU per confirmed order summed over the platform's processes (the load generator aside), at the
    level that confirmed the most orders a second."""
    goal = "checkout ≤ 15 ms of CPU per order, summed over every process"
    levels = scenario_levels(results, "checkout")
    if not levels:
        return {"goal": goal, "status": "not measured", "measured": "", "by": ""}
    vus, row = max(levels, key=lambda item: throughput("checkout", item[1]))
    spent = {
        n: ms for n, ms in cpu_per_unit("checkout", row).items() if n not in NOT_PLATFORM and n != "total"
    }
    if not spent:
        return {"goal": goal, "status": "not measured", "measured": "", "by": ""}
    total = sum(spent.values())
    largest = ", ".join(f"{n} {ms:,.1f}" for n, ms in list(spent.items())[:3])
    status = "pass" if total <= 15 else "miss"
    by = f"{abs(total - 15):,.1f} ms {'under' if status == 'pass' else 'over'}"
    return {
        "goal": goal,
        "status": status,
        "measured": f"{total:,.1f} ms per order at {vus} VUs (largest: {largest})",
        "by": by,
    }


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals for a 2-core machine, each with pass/miss and by how much."""
    rows = [
        _rate_goal(results, "browse", "browse ≥ 1,200 req/s with p95 < 50 ms", min_rate=1200, max_p95=50),
        _rate_goal(
            results,
            "browse_uncached",
            "browse with the response cache off ≥ 600 req/s",
            min_rate=600,
            max_p95=float("inf"),
        ),
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
            "checkout ≥ 100 orders/s confirmed",
            min_rate=100,
            max_p95=float("inf"),
            saga=True,
        ),
        _saga_latency_goal(results),
        _order_cpu_goal(results),
    ]
    # login at 90% of the raw bcrypt rate
    login = scenario_levels(results, "login")
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
