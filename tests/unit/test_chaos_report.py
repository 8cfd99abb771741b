"""The chaos report: a run against several processes of each service has a table of its own in
the docs, so that it never replaces the one-process run's table (or the other way round), and a
run stopped before its last fault says so instead of passing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaos.report import README_END, README_START, REPLICAS_END, REPLICAS_START, markdown, update_docs
from chaos.run import Chaos, Config, Row

DOC = f"""# Reliability

{README_START}
one process
{README_END}

{REPLICAS_START}
replicas
{REPLICAS_END}
"""


def results(replicas: int, accepted: int) -> dict[str, Any]:
    fault = {
        "fault": "kill order",
        "what": "SIGKILL the order process, restart it",
        "accepted": accepted,
        "in_flight": 3,
        "lost": 0,
        "oversold": 0,
        "double_charges": 0,
        "duplicate_emails": 0,
        "internal_errors": 0,
        "settle_seconds": 12.5,
        "answers": {"OK": accepted},
        "retries": 0,
        "abandoned": 0,
        "outcomes": {"CONFIRMED": accepted},
        "notes": [],
        "violations": [],
        "passed": True,
    }
    config = {"rate": 30.0, "shoppers": 24, "products": 6, "units": 1500, "during": 150, "before": 30}
    config |= {"after": 30, "replicas": replicas}
    return {
        "date": "2026-12-07",
        "mode": "full",
        "seconds": 400.0,
        "config": config,
        "faults": [fault],
        "failures": [],
        "passed": True,
    }


def test_each_run_writes_its_own_block_and_says_how_many_processes_ran(tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    doc.write_text(DOC)

    assert update_docs(doc, results(replicas=2, accepted=222))
    assert update_docs(doc, results(replicas=1, accepted=111))

    text = doc.read_text()
    single = text[text.index(README_START) : text.index(README_END)]
    several = text[text.index(REPLICAS_START) : text.index(REPLICAS_END)]
    assert "| kill order | 111 |" in single
    assert "one process of each service" in single
    assert "| kill order | 222 |" in several
    assert "`--replicas 2`" in several
    assert "2 processes of each service" in several


def test_a_document_without_the_block_is_left_alone(tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    doc.write_text("# Reliability\n")

    assert not update_docs(doc, results(replicas=2, accepted=5))
    assert doc.read_text() == "# Reliability\n"


def test_the_report_names_the_processes_of_each_service() -> None:
    assert "against 2 processes of each service" in markdown(results(replicas=2, accepted=7))


def test_a_run_stopped_before_its_last_fault_is_reported_as_stopped_not_passed(tmp_path: Path) -> None:
    config = Config(faults=["kill order", "poison"], results_dir=tmp_path)
    chaos = Chaos(config)
    chaos.rows.append(
        Row("kill order", "SIGKILL the order process, restart it", accepted=5, settle_seconds=1.0)
    )

    chaos._write(12.0)

    written = json.loads((chaos.out / "results.json").read_text())
    assert written["passed"] is False
    assert written["failures"] == ["stopped after 1 of 2 faults"]
    assert "**some faults failed**" in (chaos.out / "report.md").read_text()
