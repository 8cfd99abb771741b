"""The benchmark report's reading of a run: what the errors said and what bounds a scenario."""

from __future__ import annotations

from typing import Any

from bench import report

LOGIN_TIMEOUT = (
    'time="2026-12-06T17:53:15Z" level=warning msg="login: HTTP 200 {\\"data\\":null,\\"errors\\":'
    '[{\\"message\\":\\"a service is temporarily unavailable; try again shortly\\",\\"locations\\":'
    '[{\\"line\\":3,\\"column\\":3}],\\"path\\":[\\"login\\"],\\"extensions\\":{\\"code\\":'
    '\\"SERVICE_UNAVAILABLE\\"}}],\\"extensions\\":{\\"cost\\":{\\"requestedQueryCost\\":11"'
)
GATEWAY_DOWN = 'time="2026-12-06T17:53:16Z" level=warning msg="products: HTTP 502 bad gateway"'


def test_error_samples_name_the_operation_status_code_and_message_most_frequent_first() -> None:
    row = {"k6_messages": [GATEWAY_DOWN, LOGIN_TIMEOUT, LOGIN_TIMEOUT, "level=error msg=unrelated"]}

    assert report.error_samples(row) == [
        ("login: HTTP 200 SERVICE_UNAVAILABLE (a service is temporarily unavailable; try again shortly)", 2),
        ("products: HTTP 502", 1),
    ]


def test_a_run_without_messages_has_no_error_samples() -> None:
    assert report.error_samples({}) == []


def _run(processes: dict[str, float], machine: float) -> dict[str, Any]:
    level = {
        "requests_per_second": 300.0,
        "machine_cpu_percent": machine,
        "processes": {name: {"cpu_percent": cpu, "peak_rss_mb": 100.0} for name, cpu in processes.items()},
    }
    return {"machine": {"cpus": 2}, "scenarios": {"browse": {"levels": {"32": level}}}}


def test_one_event_loop_past_most_of_its_core_is_the_bound_even_with_cores_to_spare() -> None:
    verdict = report.bounds(_run({"gateway": 86.0, "catalog": 35.0, "k6": 19.0}, 150.0))["browse"]["verdict"]
    assert verdict.startswith("one core: the gateway's Python process")


def test_a_scenario_with_every_process_well_below_its_core_waits_on_round_trips() -> None:
    verdict = report.bounds(_run({"gateway": 50.0, "catalog": 30.0}, 90.0))["browse"]["verdict"]
    assert verdict.startswith("not CPU-bound")
