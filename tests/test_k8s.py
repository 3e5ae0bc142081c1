"""deploy/k8s/: every manifest valid against the Kubernetes schemas (kubernetes-validate, no
cluster), and the properties the design relies on actually set."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from app.core.settings import Settings

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
VERSION = "1.30.0"
# CloudNativePG's Cluster is a custom resource (no schema in kubernetes-validate): the fields
# this deployment depends on are checked against this subset of its CRD.
CNPG_CLUSTER = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "postgresql.cnpg.io/v1"},
        "spec": {"type": "object", "required": ["instances", "imageName", "storage", "bootstrap"],
                 "properties": {
                     "instances": {"type": "integer", "minimum": 3},
                     "minSyncReplicas": {"type": "integer", "minimum": 1},
                     "maxSyncReplicas": {"type": "integer", "minimum": 1},
                     "imageName": {"type": "string", "pattern": "postgis"},
                     "storage": {"type": "object", "required": ["size"]},
                     "postgresql": {"type": "object", "properties": {"parameters": {
                         "type": "object", "additionalProperties": {"type": "string"}}}},
                     "bootstrap": {"type": "object", "required": ["initdb"]},
                 }, "additionalProperties": True},
    },
}


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in documents() if d["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in by_kind(kind) if d["metadata"]["name"] == name)


@pytest.mark.parametrize(("name", "doc"), documents(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_manifest_is_valid(name: str, doc: dict[str, Any]) -> None:
    if doc["kind"] == "Cluster":
        jsonschema.validate(doc, CNPG_CLUSTER)
    else:
        kubernetes_validate.validate(doc, VERSION, strict=True)


def test_every_kind_is_there() -> None:
    kinds = {d["kind"] for _, d in documents()}
    assert kinds >= {"Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                     "Job", "ConfigMap", "Cluster"}


def _workloads() -> list[dict[str, Any]]:
    return by_kind("Deployment") + by_kind("StatefulSet")


def test_every_workload_has_a_disruption_budget_that_selects_it() -> None:
    budgets = [b["spec"]["selector"]["matchLabels"] for b in by_kind("PodDisruptionBudget")]
    for workload in _workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if workload["metadata"]["name"] == "redis":
            continue  # one disposable counter store; the API limits in memory without it
        assert any(b.items() <= labels.items() for b in budgets), workload["metadata"]["name"]


def test_api_probes_autoscaler_and_database_routing() -> None:
    api = one("Deployment", "api")
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"] for e in container["env"]}
    assert {"CITYPARK_DATABASE_URL", "CITYPARK_DATABASE_DIRECT_URL", "CITYPARK_DATABASE_READ_URL"} <= env
    hpa = one("HorizontalPodAutoscaler", "api")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    assert hpa["spec"]["minReplicas"] >= 2


def test_commands_are_real_citypark_commands() -> None:
    known = {"serve", "ingest", "enforce", "migrate"}
    for doc in [*_workloads(), *by_kind("Job")]:
        for container in doc["spec"]["template"]["spec"]["containers"]:
            if container["image"].startswith("registry.example/citypark"):
                assert container["command"][0] == "citypark"
                assert container["command"][1] in known
    assert one("Job", "migrate")["spec"]["template"]["spec"]["containers"][0]["command"] == ["citypark", "migrate"]


def test_settings_named_in_manifests_exist() -> None:
    fields = {f"CITYPARK_{name.upper()}" for name in Settings.model_fields}
    named = set(one("ConfigMap", "citypark-config")["data"])
    for doc in [*_workloads(), *by_kind("Job")]:
        for container in doc["spec"]["template"]["spec"]["containers"]:
            named |= {e["name"] for e in container.get("env", []) if e["name"].startswith("CITYPARK_")}
    assert named <= fields, named - fields


def test_pgbouncer_is_in_transaction_mode_and_the_app_has_no_statement_cache() -> None:
    ini = one("ConfigMap", "pgbouncer")["data"]["pgbouncer.ini"]
    assert re.search(r"^pool_mode = transaction$", ini, re.M)
    config = one("ConfigMap", "citypark-config")["data"]
    assert Settings(db_statement_cache_size=config["CITYPARK_DB_STATEMENT_CACHE_SIZE"]).db_statement_cache_size == 0


def test_emqx_in_flight_window_holds_a_whole_batch() -> None:
    conf = one("ConfigMap", "emqx")["data"]["emqx.conf"]
    inflight = int(re.search(r"max_inflight = (\d+)", conf)[1])  # type: ignore[index]
    queue = int(re.search(r"max_mqueue_len = (\d+)", conf)[1])  # type: ignore[index]
    batch = int(one("ConfigMap", "citypark-config")["data"]["CITYPARK_INGEST_BATCH_SIZE"])
    receive_maximum = min(65535, max(1000, 4 * batch))  # what a worker asks for (sensors/worker.py)
    assert inflight >= receive_maximum > 32  # EMQX's default of 32 would cap a batch at 32
    assert queue >= 100 * batch
    assert "shared_subscription = true" in conf
    assert "$share/citypark/parking/#" in one("ConfigMap", "emqx")["data"]["acl.conf"]
