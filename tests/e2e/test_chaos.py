"""The short run of `make chaos`: its own platform, every process separate, faults injected under a
steady load of orders, and every invariant checked after each (see chaos/run.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chaos.faults import FAULTS

ZEROES = ("lost", "oversold", "double_charges", "duplicate_emails", "internal_errors")


def test_the_short_chaos_run_loses_nothing_oversells_nothing_and_charges_once(tmp_path: Path):
    # The run starts its own embedded servers (it kills and restarts them), whatever the settings.
    run = subprocess.run(
        [sys.executable, "-m", "chaos.run", "--short", "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    [out] = list(tmp_path.glob("*-chaos-short"))
    results = json.loads((out / "results.json").read_text())
    failed = [(f["fault"], f["violations"]) for f in results["faults"] if not f["passed"]]
    assert run.returncode == 0, (failed, results["failures"], run.stderr[-3000:])

    assert results["passed"] is True
    assert [f["fault"] for f in results["faults"]] == [f.name for f in FAULTS if f.short]
    for fault in results["faults"]:
        assert fault["accepted"] > 0, fault
        assert all(fault[key] == 0 for key in ZEROES), fault
        assert fault["settle_seconds"] is not None, fault
    poison = next(f for f in results["faults"] if f["fault"] == "poison")
    assert any("dead-lettered by every consumer" in note for note in poison["notes"])
    report = (out / "report.md").read_text()
    assert "| kill payment |" in report
    assert "every fault passed" in report
