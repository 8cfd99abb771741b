"""The PNG charts of a run: throughput, latency and memory per level."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.readings import RSS_LIMIT_MB, peak_rss, scenario_levels


def charts(results: dict[str, Any], out: Path) -> list[str]:
    """throughput.png, latency.png and memory.png; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    written: list[str] = []
    names = [s for s in results.get("scenarios", {}) if scenario_levels(results, s)]
    names += [b for b in ("hello", "grpc_echo") if results.get("baselines", {}).get(b, {}).get("levels")]
    if not names:
        return written

    def rows_of(name: str) -> list[tuple[int, dict[str, Any]]]:
        if name in results.get("scenarios", {}):
            return scenario_levels(results, name)
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
