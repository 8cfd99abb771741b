"""The benchmark report's reading of a run: what the errors said and what bounds a scenario."""

from __future__ import annotations

from typing import Any

from bench import measure, report

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


def test_cpu_per_request_divides_each_process_by_the_requests_served() -> None:
    level = _run({"gateway": 84.0, "catalog": 36.0, "k6": 30.0}, 160.0)["scenarios"]["browse"]["levels"]["32"]

    spent = report.cpu_per_unit("browse", level)

    # 84% of a core is 840 ms of CPU a second, over 300 requests a second.
    assert spent == {"gateway": 2.8, "catalog": 1.2, "k6": 1.0, "total": 5.0}
    assert report.cpu_per_unit("browse", {"requests_per_second": 0.0, "processes": {}}) == {}


def test_a_missed_rate_goal_says_how_much_cpu_a_request_took_and_how_much_the_goal_leaves() -> None:
    results = _run({"gateway": 84.0, "catalog": 36.0, "k6": 30.0}, 160.0)
    results["scenarios"]["browse"]["levels"]["32"]["latency_ms"] = {"p95": 40.0}

    [browse] = [g for g in report.goals(results) if g["goal"].startswith("browse ≥")]

    assert browse["status"] == "miss"
    assert "the goal leaves 1.67 ms of CPU per request on 2 cores, and one took 5.00 ms" in browse["by"]


def _checkout(levels: dict[int, tuple[float, float, dict[str, float]]]) -> dict[str, Any]:
    """A checkout run: per level, orders confirmed a second, the saga's p95 and each process's CPU %."""
    rows = {
        str(vus): {
            "requests_per_second": confirmed * 5,
            "orders": {
                "accepted_per_second": confirmed,
                "confirmed_per_second": confirmed,
                "saga_ms": {"p50": saga_p95 / 2, "p95": saga_p95},
            },
            "processes": {
                name: {"cpu_percent": cpu, "peak_rss_mb": 100.0} for name, cpu in processes.items()
            },
        }
        for vus, (confirmed, saga_p95, processes) in levels.items()
    }
    return {"machine": {"cpus": 2}, "scenarios": {"checkout": {"levels": rows}}}


def test_checkout_goals_judge_confirmed_orders_the_saga_at_8_vus_and_the_platforms_cpu_per_order() -> None:
    results = _checkout(
        {
            8: (60.0, 180.0, {"order": 30.0, "catalog": 20.0, "k6": 10.0}),
            32: (120.0, 900.0, {"order": 120.0, "catalog": 48.0, "k6": 24.0}),
        }
    )

    by_goal = {g["goal"]: g for g in report.goals(results)}

    assert by_goal["checkout ≥ 100 orders/s confirmed"]["status"] == "pass"
    assert by_goal["checkout saga p95 < 250 ms at 8 VUs"]["status"] == "pass"
    cpu = by_goal["checkout ≤ 15 ms of CPU per order, summed over every process"]
    # 168% of a core over 120 orders a second: 14 ms per order; k6 is the load, not the platform.
    assert cpu["status"] == "pass"
    assert cpu["measured"].startswith("14.0 ms per order at 32 VUs (largest: order 10.0, catalog 4.0)")


def test_missed_checkout_goals_say_by_how_much() -> None:
    results = _checkout({8: (9.0, 900.0, {"order": 50.0, "catalog": 40.0, "k6": 5.0})})

    by_goal = {g["goal"]: g for g in report.goals(results)}

    assert by_goal["checkout ≥ 100 orders/s confirmed"]["by"].startswith("throughput 91% short (9 of 100")
    assert by_goal["checkout saga p95 < 250 ms at 8 VUs"]["by"] == "650 ms over"
    assert by_goal["checkout ≤ 15 ms of CPU per order, summed over every process"]["by"] == "85.0 ms over"


METRICS = """# HELP grpc_server_handled_total RPCs completed by this server, by service, method and status code.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="OK",grpc_method="GetProduct",grpc_service="ecommerce.catalog.v1.CatalogService"} 40.0
grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="GetProduct",grpc_service="ecommerce.catalog.v1.CatalogService"} 2.0
grpc_server_handled_total{grpc_code="OK",grpc_method="Check",grpc_service="grpc.health.v1.Health"} 9.0
"""


def test_a_processs_rpcs_are_counted_by_service_without_its_health_checks() -> None:
    assert measure.rpcs_by_service(METRICS) == {"ecommerce.catalog.v1.CatalogService": 42}
    assert measure.rpcs_by_service("") == {}


def test_the_report_shows_each_replicas_share_of_its_services_rpcs() -> None:
    catalog = "ecommerce.catalog.v1.CatalogService"
    results = {"replicas": 2, "rpcs_per_process": {"catalog": {catalog: 300}, "catalog-2": {catalog: 100}}}

    text = report.markdown(results)

    assert "## RPCs per process" in text
    assert f"| catalog | {catalog} | 300 | 75% |" in text
    assert f"| catalog-2 | {catalog} | 100 | 25% |" in text
