"""Kafka authentication in the Kubernetes manifests (docs/security.md, "The broker"): prod's brokers
require SASL/SCRAM and enforce ACLs, each process authenticates as its own principal with its own
password from the Secret, the Job that creates the users and ACLs runs the script `ecommerce
kafka-acls` writes, and `make k8s-validate` refuses a workload without its own credential."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from servicekit import broker_acls, topics
from tests.unit.test_k8s_manifests import config, container, env, objects_of
from tools.k8s_validate import check, load, render, rule_errors

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
DEPLOYMENTS = ("account", "catalog", "order", "payment", "notification", "gateway")


@pytest.fixture(scope="module")
def overlays() -> dict[str, list[dict]]:
    return {name: render(K8S / "overlays" / name) for name in ("dev", "prod")}


def secret_ref(workload: dict, variable: str) -> tuple[str, str] | None:
    for entry in container(workload).get("env", ()):
        if entry["name"] == variable and "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            return ref["name"], ref["key"]
    return None


def test_prod_clients_use_sasl_scram_and_dev_says_its_broker_authenticates_nobody(overlays):
    prod, dev = config(overlays["prod"]), config(overlays["dev"])

    assert (prod["KAFKA_SECURITY_PROTOCOL"], prod["KAFKA_SASL_MECHANISM"]) == (
        "SASL_PLAINTEXT",
        "SCRAM-SHA-512",
    )
    assert prod["KAFKA_SASL_MECHANISM"] == broker_acls.SCRAM_MECHANISM
    assert dev["KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_each_prod_deployment_authenticates_as_itself(overlays, name):
    deployment = objects_of(overlays["prod"], "Deployment")[name]

    assert env(deployment)["KAFKA_SASL_USERNAME"] == name
    assert secret_ref(deployment, "KAFKA_SASL_PASSWORD") == ("kafka-credentials", name)
    assert name in topics.ACCESS


def test_the_topic_job_authenticates_as_the_topics_principal(overlays):
    job = objects_of(overlays["prod"], "Job")["kafka-topics"]

    assert env(job)["KAFKA_SASL_USERNAME"] == "topics"
    assert secret_ref(job, "KAFKA_SASL_PASSWORD") == ("kafka-credentials", "topics")


def test_prod_brokers_learn_the_admin_password_and_the_base_runs_without_one(overlays):
    prod = objects_of(overlays["prod"], "StatefulSet")["kafka"]
    dev = objects_of(overlays["dev"], "StatefulSet")["kafka"]
    script = objects_of(overlays["prod"], "ConfigMap")
    start = next(v for k, v in script.items() if k.startswith("kafka-scripts"))["data"]["start.sh"]

    assert secret_ref(prod, "KAFKA_ADMIN_PASSWORD") == ("kafka-credentials", "admin")
    assert secret_ref(dev, "KAFKA_ADMIN_PASSWORD") is None
    assert "allow.everyone.if.no.acl.found=false" in start
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in start


def test_the_access_job_runs_the_script_kafka_acls_writes(overlays):
    configmaps = objects_of(overlays["prod"], "ConfigMap")
    (shipped,) = [v for k, v in configmaps.items() if k.startswith("kafka-access-")]
    job = objects_of(overlays["prod"], "Job")["kafka-access"]
    committed = (K8S / "overlays" / "prod" / "kafka-access.sh").read_text()

    assert committed == broker_acls.render("script"), (
        "stale: run `ecommerce kafka-acls --format script > k8s/overlays/prod/kafka-access.sh`"
    )
    assert shipped["data"]["kafka-access.sh"] == committed
    assert container(job)["command"] == ["sh", "/opt/ecommerce/kafka-access.sh"]
    assert "kafka-access" not in objects_of(overlays["dev"], "Job")


def test_the_secret_template_has_a_placeholder_password_for_every_principal():
    (credentials,) = [
        o
        for o in load((K8S / "base" / "secret.example.yaml").read_text())
        if o["metadata"]["name"] == "kafka-credentials"
    ]

    assert set(credentials["stringData"]) == {"admin", *topics.ACCESS}
    assert all(v.startswith("change-me") for v in credentials["stringData"].values())


# -- the validation refuses what breaks the promise ---------------------------------------------------


def _with(objects: list[dict], kind: str, name: str, change) -> list[dict]:
    changed = copy.deepcopy(objects)
    change(container(objects_of(changed, kind)[name]))
    return changed


def _env_entry(variable: str):
    def find(c: dict) -> dict:
        return next(e for e in c["env"] if e["name"] == variable)

    return find


def test_the_validation_refuses_a_deployment_without_a_kafka_credential(overlays):
    def drop(c: dict) -> None:
        c["env"] = [e for e in c["env"] if not e["name"].startswith("KAFKA_SASL_")]

    errors = rule_errors(_with(overlays["prod"], "Deployment", "payment", drop))

    assert errors == [
        "Deployment ecommerce/payment container payment: reaches a SASL broker without a Kafka user and "
        "password of its own"
    ]


def test_the_validation_refuses_a_shared_password_or_user(overlays):
    def catalogs_password(c: dict) -> None:
        _env_entry("KAFKA_SASL_PASSWORD")(c)["valueFrom"]["secretKeyRef"]["key"] = "catalog"

    def catalogs_user(c: dict) -> None:
        _env_entry("KAFKA_SASL_USERNAME")(c)["value"] = "catalog"

    assert rule_errors(_with(overlays["prod"], "Deployment", "gateway", catalogs_password)) == [
        "Kafka password kafka-credentials/catalog is shared by Deployment ecommerce/catalog, "
        "Deployment ecommerce/gateway"
    ]
    assert rule_errors(_with(overlays["prod"], "Deployment", "gateway", catalogs_user)) == [
        "Kafka user 'catalog' is shared by Deployment ecommerce/catalog, Deployment ecommerce/gateway"
    ]


def test_the_validation_refuses_a_password_written_in_the_manifest(overlays):
    def literal(c: dict) -> None:
        entry = _env_entry("KAFKA_SASL_PASSWORD")(c)
        entry.pop("valueFrom")
        entry["value"] = "0123456789abcdef"

    errors = rule_errors(_with(overlays["prod"], "Deployment", "order", literal))

    assert (
        "Deployment ecommerce/order container order: KAFKA_SASL_PASSWORD is written in the manifest, not read from a Secret"
        in errors
    )


def test_the_overlays_pass_the_kafka_rules(overlays):
    assert check(overlays["prod"]) == []
    assert check(overlays["dev"]) == []
