"""`make bench` in its smoke version: the benchmark runs end to end against the whole platform and
writes a complete report. Timings live in the benchmark; nothing here looks at one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {"browse", "search", "login", "me", "checkout", "mix", "browse_uncached"}
BASELINES = {"hello", "grpc_echo", "asyncpg", "bcrypt"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    results_dir = tmp_path_factory.mktemp("bench-results")
    completed = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--results-dir", str(results_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-6000:]
    [out] = list(results_dir.iterdir())
    return out, json.loads((out / "results.json").read_text())


def test_the_smoke_run_measures_every_scenario_without_a_failed_request(smoke_run: tuple[Path, dict]) -> None:
    _, results = smoke_run
    assert results["mode"] == "smoke"
    assert results["failures"] == []
    assert set(results["scenarios"]) == SCENARIOS
    for name, scenario in results["scenarios"].items():
        assert "failed" not in scenario, name
        assert scenario["levels"], name
        for level in scenario["levels"].values():
            assert level["requests"] > 0, name
            assert level["errors"] == 0, (name, level.get("k6_messages"))
            assert level["processes"]["gateway"]["peak_rss_mb"] > 0, name


def test_the_smoke_run_takes_every_order_to_confirmed(smoke_run: tuple[Path, dict]) -> None:
    _, results = smoke_run
    [orders] = [level["orders"] for level in results["scenarios"]["checkout"]["levels"].values()]
    assert orders["accepted"] > 0
    assert orders["confirmed"] == orders["accepted"]
    assert orders["not_confirmed"] == 0


def test_the_smoke_run_measures_the_baselines_and_the_broker(smoke_run: tuple[Path, dict]) -> None:
    _, results = smoke_run
    assert set(results["baselines"]) == BASELINES
    assert results["baselines"]["bcrypt"]["rounds"] == 4  # lowered only by the smoke mode's setting
    assert results["broker"]["events"] == results["config"]["broker_events"]
    assert results["settings"]["ECOMMERCE_ENV"] == "production"
    assert set(results["budget_settings"]) <= set(results["settings"])


def test_the_smoke_run_writes_the_report_and_charts_and_removes_its_data(
    smoke_run: tuple[Path, dict],
) -> None:
    out, results = smoke_run
    report = (out / "report.md").read_text()
    for heading in ("## Results", "## Baselines", "## What bounds each scenario", "## Goals"):
        assert heading in report
    for scenario in SCENARIOS:
        assert f"| {scenario} |" in report
    assert "Per-caller cost budgets are raised" in report
    assert results["charts"] == ["throughput.png", "latency.png", "memory.png"]
    for chart in results["charts"]:
        assert (out / chart).read_bytes().startswith(b"\x89PNG")
    assert not (out / "data").exists()
