"""The Kubernetes manifests: every overlay renders, passes the Kubernetes schemas and our rules, and
its NetworkPolicies open exactly the paths of the design; the validation fails on a bad manifest."""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import servicekit.metrics  # noqa: F401 - registers every metric the rules and the dashboard name
from gateway.forwarded import parse_networks
from tools import k8s_validate
from tools.k8s_validate import check, grpc_tls_errors, load, render, rule_errors, selects

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
FIXTURE = ROOT / "tests" / "fixtures" / "k8s" / "missing-probe.yaml"
MONITORING = K8S / "components" / "monitoring"
SERVICES = ("account", "catalog", "order", "payment", "notification")


@pytest.fixture(scope="module")
def overlays() -> dict[str, list[dict]]:
    return {name: render(K8S / "overlays" / name) for name in ("dev", "prod")}


def objects_of(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def container(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]["containers"][0]


def env(workload: dict) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container(workload).get("env", ())}


def config(objects: list[dict]) -> dict[str, str]:
    (configmap,) = [o for o in objects if o["metadata"]["name"].startswith("ecommerce-config-")]
    return configmap["data"]


# -- the overlays pass ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_object_of_the_overlay_passes_the_schemas_and_our_rules(overlays, overlay):
    assert check(overlays[overlay], grpc_tls_required=overlay == "prod") == []


def test_the_secret_template_is_valid_and_holds_no_real_secret():
    objects = load((K8S / "base" / "secret.example.yaml").read_text())

    assert check(objects) == []
    assert all(v.startswith("change-me") for v in objects[0]["stringData"].values())
    assert "replace with the PEM" in objects[1]["stringData"]["signing.pem"]


# -- the validation fails on what it must refuse --------------------------------------------------


def test_the_validation_fails_on_a_manifest_with_a_missing_probe(capsys):
    exit_code = k8s_validate.main([str(FIXTURE)])

    assert exit_code == 1
    assert capsys.readouterr().err.splitlines()[1:] == [
        "  Deployment demo/web container web: no readinessProbe"
    ]


def fixed_fixture() -> list[dict]:
    objects = load(FIXTURE.read_text())
    deployment = objects_of(objects, "Deployment")["web"]
    container(deployment)["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": 8080}}
    return objects


def test_the_fixture_with_its_probe_passes_so_the_probe_is_what_failed():
    assert check(fixed_fixture()) == []


def _set(path: str, value):  # type: ignore[no-untyped-def]
    def change(objects: list[dict]) -> None:
        target = container(objects_of(objects, "Deployment")["web"])
        *parents, last = path.split(".")
        for part in parents:
            target = target[part]
        if value is None:
            del target[last]
        else:
            target[last] = value

    return change


def _drop(kind: str):  # type: ignore[no-untyped-def]
    def change(objects: list[dict]) -> None:
        objects[:] = [o for o in objects if not (o["kind"] == kind and o["metadata"]["name"] == "web")]

    return change


def _drop_default_deny(objects: list[dict]) -> None:
    objects[:] = [o for o in objects if o["metadata"]["name"] != "default-deny"]


def _add_grpc_service(*, headless: bool):  # type: ignore[no-untyped-def]
    def change(objects: list[dict]) -> None:
        spec = {"selector": {"app.kubernetes.io/name": "web"}, "ports": [{"name": "grpc", "port": 50051}]}
        if headless:
            spec["clusterIP"] = "None"
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": "demo"},
                "spec": spec,
            }
        )

    return change


def _add_config(key: str, value: str):  # type: ignore[no-untyped-def]
    def change(objects: list[dict]) -> None:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "web-config", "namespace": "demo"},
                "data": {key: value},
            }
        )

    return change


def test_a_headless_grpc_service_and_dns_peer_addresses_pass():
    objects = fixed_fixture()
    _add_grpc_service(headless=True)(objects)
    _add_config("CATALOG_ADDR", "dns:///catalog.demo.svc.cluster.local:50051")(objects)

    assert check(objects) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_set("image", "example/web:latest"), "container web: image 'example/web:latest' is not pinned"),
        (_set("image", "example/web"), "container web: image 'example/web' is not pinned"),
        (_set("livenessProbe", None), "container web: no livenessProbe"),
        (_set("resources.limits", None), "container web: no resource limits for cpu, memory"),
        (_set("resources.requests.memory", None), "container web: no resource requests for memory"),
        (
            _set("securityContext.readOnlyRootFilesystem", False),
            "container web: readOnlyRootFilesystem is not true",
        ),
        (_set("securityContext.allowPrivilegeEscalation", True), "allowPrivilegeEscalation is not false"),
        (_set("securityContext.capabilities", None), "container web: capabilities do not drop ALL"),
        (_drop("PodDisruptionBudget"), "Deployment demo/web: no PodDisruptionBudget selects its pods"),
        (_drop("NetworkPolicy"), "Deployment demo/web: no NetworkPolicy of its own selects its pods"),
        (_drop_default_deny, "namespace demo: no default-deny NetworkPolicy"),
        (_add_grpc_service(headless=False), "Service demo/web: a gRPC Service is not headless"),
        (
            _add_config("CATALOG_ADDR", "catalog:50051"),
            "ConfigMap demo/web-config: CATALOG_ADDR is 'catalog:50051', not a dns:/// target",
        ),
        (
            _set("env", [{"name": "ORDER_ADDR", "value": "ipv4:10.0.0.1:50051"}]),
            "Deployment demo/web: container web: ORDER_ADDR is 'ipv4:10.0.0.1:50051', not a dns:/// target",
        ),
    ],
)
def test_each_rule_refuses_the_manifest_that_breaks_it(change, problem):
    objects = fixed_fixture()
    change(objects)

    problems = rule_errors(objects)

    assert len(problems) == 1
    assert problem in problems[0]


def test_a_misspelled_field_fails_the_strict_schema():
    objects = fixed_fixture()
    container(objects_of(objects, "Deployment")["web"])["readinesProbe"] = {"tcpSocket": {"port": 8080}}

    assert check(objects) == [
        "Deployment demo/web: spec.template.spec.containers.0: Additional properties are not allowed "
        "('readinesProbe' was unexpected)"
    ]


# -- what the overlays deploy --------------------------------------------------------------------


PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def test_services_probe_the_standard_grpc_health_service_and_the_gateway_its_http_endpoints(overlays):
    deployments = objects_of(overlays["dev"], "Deployment")
    for service in SERVICES:
        probes = {k: container(deployments[service])[k] for k in PROBES}
        assert {k: p["grpc"] for k, p in probes.items()} == {key: {"port": 50051} for key in probes}, service
    for overlay in ("dev", "prod"):
        gateway = container(objects_of(overlays[overlay], "Deployment")["gateway"])
        assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_prod_runs_grpc_over_mutual_tls_with_each_process_mounting_its_own_secret(overlays):
    dev, prod = config(overlays["dev"]), config(overlays["prod"])
    deployments = objects_of(overlays["prod"], "Deployment")

    assert "GRPC_TLS_ENABLED" not in dev
    assert {k: v for k, v in prod.items() if k.startswith("GRPC_TLS_")} == {
        "GRPC_TLS_ENABLED": "true",
        "GRPC_TLS_CA_FILE": "/etc/ecommerce/grpc-tls/ca.crt",
        "GRPC_TLS_CERT_FILE": "/etc/ecommerce/grpc-tls/tls.crt",
        "GRPC_TLS_KEY_FILE": "/etc/ecommerce/grpc-tls/tls.key",
    }
    for name in (*SERVICES, "gateway"):
        pod = deployments[name]["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "grpc-tls"]
        (mount,) = [m for m in container(deployments[name])["volumeMounts"] if m["name"] == "grpc-tls"]
        assert volume["secret"]["secretName"] == f"grpc-tls-{name}", name
        assert (mount["mountPath"], mount["readOnly"]) == ("/etc/ecommerce/grpc-tls", True), name


def test_prod_services_are_probed_on_the_metrics_port_for_the_kubelet_cannot_present_a_certificate(overlays):
    deployments = objects_of(overlays["prod"], "Deployment")
    for service in SERVICES:
        probes = {k: container(deployments[service])[k]["httpGet"] for k in PROBES}
        assert probes == {
            "startupProbe": {"path": "/readyz", "port": "metrics"},
            "readinessProbe": {"path": "/readyz", "port": "metrics"},
            "livenessProbe": {"path": "/healthz", "port": "metrics"},
        }, service


def test_the_validation_requires_grpc_tls_of_every_grpc_process_in_an_overlay_named_prod(tmp_path, capsys):
    # An overlay named prod that renders the dev overlay, TLS off.
    (tmp_path / "prod").mkdir()
    dev = os.path.relpath(K8S / "overlays" / "dev", tmp_path / "prod")
    (tmp_path / "prod" / "kustomization.yaml").write_text(f"resources:\n  - {dev}\n")

    exit_code = k8s_validate.main([str(tmp_path / "prod")])

    assert exit_code == 1
    assert sorted(capsys.readouterr().err.splitlines()[1:]) == [
        f"  Deployment ecommerce/{name} container {name}: GRPC_TLS_ENABLED is not true"
        for name in sorted((*SERVICES, "gateway"))
    ]


def _without_tls_volume(objects: list[dict]) -> None:
    pod = objects_of(objects, "Deployment")["order"]["spec"]["template"]["spec"]
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "grpc-tls"]


def _with_grpc_probe(objects: list[dict]) -> None:
    container(objects_of(objects, "Deployment")["order"])["livenessProbe"] = {"grpc": {"port": 50051}}


def _without_key_setting(objects: list[dict]) -> None:
    del config(objects)["GRPC_TLS_KEY_FILE"]


@pytest.mark.parametrize(
    ("change", "problems"),
    [
        (
            _without_tls_volume,
            [
                f"Deployment ecommerce/order container order: {setting} '/etc/ecommerce/grpc-tls/{file}' is "
                "not in a Secret the container mounts"
                for setting, file in (
                    ("GRPC_TLS_CA_FILE", "ca.crt"),
                    ("GRPC_TLS_CERT_FILE", "tls.crt"),
                    ("GRPC_TLS_KEY_FILE", "tls.key"),
                )
            ],
        ),
        (
            _with_grpc_probe,
            [
                "Deployment ecommerce/order container order: livenessProbe is a gRPC probe, which cannot "
                "present a client certificate"
            ],
        ),
        (
            _without_key_setting,
            [
                f"Deployment ecommerce/{name} container {name}: GRPC_TLS_KEY_FILE '' is not in a Secret the "
                "container mounts"
                for name in ("account", "catalog", "gateway", "notification", "order", "payment")
            ],
        ),
    ],
)
def test_the_validation_refuses_tls_without_its_files_or_with_a_grpc_probe(overlays, change, problems):
    objects = copy.deepcopy(overlays["prod"])
    change(objects)

    assert sorted(grpc_tls_errors(objects, required=True)) == problems


def test_every_pod_runs_the_one_image_with_the_command_for_its_service(overlays):
    deployments = objects_of(overlays["dev"], "Deployment")
    jobs = objects_of(overlays["dev"], "Job")

    assert {name: container(deployments[name])["args"] for name in (*SERVICES, "gateway")} == {
        name: [name] for name in (*SERVICES, "gateway")
    }
    assert {name: container(job)["command"] for name, job in jobs.items()} == {
        **{f"migrate-{s}": ["ecommerce", "migrate", s] for s in SERVICES},
        "kafka-topics": ["ecommerce", "topics"],
    }
    assert {container(deployments[n])["image"] for n in SERVICES} == {"ecommerce:0.1.0"}


def test_every_grpc_service_is_headless_and_every_peer_resolves_all_its_pods(overlays):
    for overlay in ("dev", "prod"):
        services = objects_of(overlays[overlay], "Service")
        assert {s: services[s]["spec"].get("clusterIP") for s in SERVICES} == dict.fromkeys(SERVICES, "None")
        assert services["gateway"]["spec"].get("clusterIP") != "None"
        namespace = services["catalog"]["metadata"]["namespace"]
        addresses = {k: v for k, v in config(overlays[overlay]).items() if k.endswith("_ADDR")}
        assert addresses == {
            f"{s.upper()}_ADDR": f"dns:///{s}.{namespace}.svc.cluster.local:50051" for s in SERVICES
        }
        # Servers end connections, so clients resolve the name again and find the pods added since.
        assert {
            s: config(overlays[overlay]).get(f"{s.upper()}_GRPC_MAX_CONNECTION_AGE") for s in SERVICES
        } == (dict.fromkeys(SERVICES, "60"))


def test_autoscalers_exist_for_gateway_catalog_and_order(overlays):
    for overlay in ("dev", "prod"):
        autoscalers = objects_of(overlays[overlay], "HorizontalPodAutoscaler")
        assert {a["spec"]["scaleTargetRef"]["name"] for a in autoscalers.values()} == {
            "gateway",
            "catalog",
            "order",
        }


def test_dev_runs_one_kafka_broker_and_prod_three_with_replication_three_and_two_in_sync(overlays):
    dev = objects_of(overlays["dev"], "StatefulSet")["kafka"]
    prod = objects_of(overlays["prod"], "StatefulSet")["kafka"]

    assert (dev["spec"]["replicas"], env(dev)["KAFKA_REPLICAS"], env(dev)["KAFKA_REPLICATION_FACTOR"]) == (
        1,
        "1",
        "1",
    )
    assert prod["spec"]["replicas"] == 3
    assert {
        k: env(prod)[k] for k in ("KAFKA_REPLICAS", "KAFKA_REPLICATION_FACTOR", "KAFKA_MIN_INSYNC_REPLICAS")
    } == {
        "KAFKA_REPLICAS": "3",
        "KAFKA_REPLICATION_FACTOR": "3",
        "KAFKA_MIN_INSYNC_REPLICAS": "2",
    }
    assert container(prod)["image"] == "apache/kafka:4.1.0"


def test_prod_services_use_idempotent_producers_and_more_partitions(overlays):
    dev, prod = config(overlays["dev"]), config(overlays["prod"])

    assert (dev["KAFKA_IDEMPOTENT_PRODUCER"], prod["KAFKA_IDEMPOTENT_PRODUCER"]) == ("false", "true")
    assert int(prod["KAFKA_TOPIC_PARTITIONS"]) > int(dev["KAFKA_TOPIC_PARTITIONS"])
    assert prod["KAFKA_TOPIC_REPLICATION_FACTOR"] == "3"
    assert prod["ECOMMERCE_ENV"] == "production"


def test_every_database_is_created_by_the_postgres_init_script(overlays):
    script = objects_of(overlays["dev"], "ConfigMap")["postgres-init"]["data"]["10-service-databases.sh"]

    assert "for service in account catalog order payment notification; do" in script
    assert 'CREATE DATABASE :"name" OWNER :"name";' in script


def test_monitoring_is_switched_on_in_prod_only(overlays):
    assert "prometheus" in objects_of(overlays["prod"], "Deployment")
    assert "prometheus" not in objects_of(overlays["dev"], "Deployment")


# -- the network paths ---------------------------------------------------------------------------


def _peers_match(peers: list[dict] | None, labels: dict[str, str]) -> bool:
    """Whether a rule's `from`/`to` admits a pod of our namespace (no peers: everyone)."""
    if not peers:
        return True
    for peer in peers:
        if "ipBlock" in peer:
            continue  # addresses outside the cluster, never our pods
        namespaces = peer.get("namespaceSelector")
        if namespaces is not None and not selects(namespaces, {"kubernetes.io/metadata.name": "ecommerce"}):
            continue
        if selects(peer.get("podSelector"), labels):
            return True
    return False


def _ports_match(ports: list[dict] | None, port: int) -> bool:
    return not ports or any(p.get("port") == port for p in ports)


def _allowed(
    policies: list[dict], labels: dict[str, str], direction: str, peer: dict[str, str], port: int
) -> bool:
    mine = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
    kind = "Ingress" if direction == "ingress" else "Egress"
    mine = [p for p in mine if kind in p["spec"].get("policyTypes", ["Ingress"])]
    if not mine:
        return True
    key = "from" if direction == "ingress" else "to"
    return any(
        _peers_match(rule.get(key), peer) and _ports_match(rule.get("ports"), port)
        for policy in mine
        for rule in policy["spec"].get(direction) or ()
    )


def network_paths(objects: list[dict]) -> set[tuple[str, str, int]]:
    """Every (from, to, port) between our pods that the NetworkPolicies let through."""
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    pods = {}
    for workload in objects:
        if workload["kind"] in ("Deployment", "StatefulSet", "Job"):
            labels = workload["spec"]["template"]["metadata"]["labels"]
            ports = {
                p["containerPort"]
                for c in workload["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", ())
            }
            pods[workload["metadata"]["name"]] = (labels, ports)
    paths = set()
    for (source, (source_labels, _)), (target, (target_labels, ports)) in itertools.product(
        pods.items(), repeat=2
    ):
        for port in ports:
            if _allowed(policies, source_labels, "egress", target_labels, port) and _allowed(
                policies, target_labels, "ingress", source_labels, port
            ):
                paths.add((re.sub(r"^migrate-.*", "migrate", source), target, port))
    return paths


def designed_paths(*, prod: bool) -> set[tuple[str, str, int]]:
    """prod: with Prometheus, and the Job that creates Kafka's users and ACLs."""
    paths = {("gateway", service, 50051) for service in SERVICES}
    paths |= {(service, "account", 50051) for service in SERVICES if service != "account"}
    paths |= {("order", "catalog", 50051), ("order", "payment", 50051)}
    for client in (*SERVICES, "gateway"):
        paths |= {(client, "redis", 6379), (client, "kafka", 9092)}
    paths |= {("catalog", "redis-cache", 6379), ("gateway", "redis-cache", 6379)}
    paths |= {(service, "postgres", 5432) for service in SERVICES}
    paths |= {("migrate", "postgres", 5432), ("kafka-topics", "kafka", 9092)}
    paths |= {("kafka", "kafka", 9092), ("kafka", "kafka", 9093)}
    if prod:
        paths |= {("prometheus", name, 9090) for name in (*SERVICES, "gateway")}
        paths.add(("kafka-access", "kafka", 9092))
    return paths


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_gateway_trusts_forwarded_for_only_from_the_ingress_network(overlays, overlay):
    networks = parse_networks(config(overlays[overlay])["GATEWAY_TRUSTED_PROXIES"])

    assert networks
    assert all(network.is_private for network in networks)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_security_state_is_never_evicted_and_the_cache_is_kept_apart(overlays, overlay):
    deployments = objects_of(overlays[overlay], "Deployment")

    def policy(name: str) -> str:
        args = container(deployments[name])["args"]
        return args[args.index("--maxmemory-policy") + 1]

    assert (policy("redis"), policy("redis-cache")) == ("noeviction", "allkeys-lru")
    for name in ("catalog", "gateway"):
        assert "@redis-cache:6379/" in (env(deployments[name])["CACHE_REDIS_URL"] or "")
        assert "@redis:6379/" in (env(deployments[name])["REDIS_URL"] or "")


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_network_policies_open_exactly_the_paths_of_the_design(overlays, overlay):
    assert network_paths(overlays[overlay]) == designed_paths(prod=overlay == "prod")


def test_only_notification_may_leave_the_cluster_and_only_for_mail_and_webhooks(overlays):
    outside = {
        policy["metadata"]["name"]: sorted(p["port"] for p in rule["ports"])
        for policy in objects_of(overlays["dev"], "NetworkPolicy").values()
        for rule in policy["spec"].get("egress") or ()
        if any("ipBlock" in peer for peer in rule.get("to", ()))
    }

    assert outside == {"notification": [25, 80, 443, 465, 587]}


# -- alert rules and the dashboard name real metrics ---------------------------------------------


def exported_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_count", "_sum"],
            "summary": ["_count", "_sum"],
        }
        names |= {family.name + s for s in suffixes.get(family.type, [])}
    return names


def metric_names(text: str) -> set[str]:
    return set(re.findall(r"\b((?:ecommerce|grpc_server)_[a-z_]+)\b", text))


def test_every_metric_in_the_alert_rules_and_the_dashboard_is_exported():
    alerts = (MONITORING / "alerts.yml").read_text()
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", ())]

    used = metric_names(alerts) | metric_names("\n".join(expressions))

    assert used - exported_names() == set()
    assert len(used) >= 15


def test_the_alert_rules_cover_what_must_page_and_say_what_to_do():
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    rules = {rule["alert"]: rule for group in groups for rule in group["rules"]}

    assert {"SagaStuck", "OutboxLagging", "CircuitBreakerOpen", "HighRpcErrorRate", "ConsumerLagging"} <= set(
        rules
    )
    for rule in rules.values():
        assert rule["labels"]["severity"] in ("page", "warn")
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


def test_the_dashboard_has_a_panel_for_each_signal_of_the_design():
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    expressions = "\n".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", ()))

    for metric in (
        "ecommerce_graphql_operations_total",
        "grpc_server_handling_seconds_bucket",
        "ecommerce_saga_step_duration_seconds_bucket",
        "ecommerce_saga_outcomes_total",
        "ecommerce_orders_by_status",
        "ecommerce_outbox_lag_seconds",
        "ecommerce_consumer_lag_messages",
        "ecommerce_inbox_duplicates_total",
        "ecommerce_cache_hits_total",
        "ecommerce_circuit_breaker_state",
        "ecommerce_payment_outcomes_total",
        "ecommerce_notifications_sent_total",
        "ecommerce_notifications_failed_total",
    ):
        assert metric in expressions, metric
