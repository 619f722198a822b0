"""The chart's monitoring: a ServiceMonitor for the operator, PodMonitors for the Dask pods, the Grafana dashboard.

The PodMonitors must select the pods the operator really builds and scrape the
port those pods really name; the dashboard's queries are checked against real
scrapes in tests/integration/test_dashboard_metrics.py.
"""

from __future__ import annotations

import json
import re

import pytest
from seamless_dask_operator.builders import ClusterRef, scheduler_pod, worker_pod
from seamless_dask_operator.resource import parse_spec

from seamless_dask_runtime.model.identity import DASHBOARD_PORT, WORKER_DASHBOARD_PORT

from ._helm import CHART, by_kind, one, render, run, set_args

ON = {"monitoring": {"enabled": True}}
DASHBOARD = CHART / "dashboards" / "seamless-dask.json"
REF = ClusterRef(name="demo", namespace="team-a", uid="0000-uid")


def monitoring_objects(objects: list[dict]) -> dict[str, list[dict]]:
    return {kind: by_kind(objects, kind) for kind in ("ServiceMonitor", "PodMonitor")} | {
        "dashboards": [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]}


def test_nothing_by_default(helm: str) -> None:
    assert monitoring_objects(render(helm)) == {"ServiceMonitor": [], "PodMonitor": [], "dashboards": []}


def test_service_monitor_scrapes_the_operators_metrics_port_keeping_the_series_labels(helm: str) -> None:
    objects = render(helm, {"monitoring": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}}})
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]}[endpoint["port"]] == 9090  # metricsPort
    assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "15s")
    # The operator's series name the cluster's namespace: the target's (the operator's) must not replace it.
    assert endpoint["honorLabels"] is True
    assert by_kind(render(helm, {**ON, "service": {"enabled": False}}), "ServiceMonitor") == []


@pytest.mark.parametrize(("component", "port"), [("scheduler", DASHBOARD_PORT), ("worker", WORKER_DASHBOARD_PORT)])
def test_pod_monitors_select_the_operators_pods_and_their_metrics_port(helm: str, component: str, port: int) -> None:
    monitors = {m["metadata"]["name"].rsplit("-", 1)[-1]: m for m in by_kind(render(helm, ON), "PodMonitor")}
    assert set(monitors) == {"schedulers", "workers"}
    monitor = monitors[f"{component}s"]
    cluster = parse_spec({"workers": {"replicas": 1}})
    pod = scheduler_pod(REF, cluster) if component == "scheduler" else worker_pod(REF, cluster, 0)
    other = worker_pod(REF, cluster, 0) if component == "scheduler" else scheduler_pod(REF, cluster)
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert not selector.items() <= other["metadata"]["labels"].items()  # each pod is scraped once
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert ports[endpoint["port"]] == port
    assert endpoint["path"] == "/metrics"
    # The labels the dashboard selects on come from the pod's own labels (Prometheus' sanitized names).
    relabel = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    sanitized = {"__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v
                 for k, v in pod["metadata"]["labels"].items()}
    assert sanitized[relabel["cluster"][0]] == "demo"
    assert sanitized[relabel["component"][0]] == component


def test_pod_monitors_follow_the_watched_namespaces(helm: str) -> None:
    for monitor in by_kind(render(helm, {**ON, "watchNamespaces": ["a", "b"]}), "PodMonitor"):
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["a", "b"]}
    for monitor in by_kind(render(helm, ON), "PodMonitor"):
        assert monitor["spec"]["namespaceSelector"] == {"any": True}


def test_dashboard_config_map_carries_the_sidecar_label_and_the_dashboard(helm: str) -> None:
    (config_map,) = monitoring_objects(render(helm, ON, namespace="ops"))["dashboards"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "ops"
    (key,) = config_map["data"]
    assert key.endswith(".json")
    assert json.loads(config_map["data"][key]) == json.loads(DASHBOARD.read_text())
    custom = {"monitoring": {"enabled": True, "grafanaDashboard": {
        "label": "example.org/dashboard", "labelValue": "yes", "namespace": "grafana",
        "annotations": {"grafana_folder": "Dask"}}}}
    (config_map,) = monitoring_objects(render(helm, custom))["dashboards"]
    assert config_map["metadata"]["labels"]["example.org/dashboard"] == "yes"
    assert "grafana_dashboard" not in config_map["metadata"]["labels"]
    assert config_map["metadata"]["namespace"] == "grafana"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Dask"}


def test_each_part_can_be_left_out(helm: str) -> None:
    parts = {"serviceMonitor": "ServiceMonitor", "podMonitors": "PodMonitor", "grafanaDashboard": "dashboards"}
    for value, kind in parts.items():
        found = monitoring_objects(render(helm, {"monitoring": {"enabled": True, value: {"enabled": False}}}))
        assert found.pop(kind) == []
        assert all(found.values()), (value, found)


def test_dashboard_panels_use_the_datasource_variable_and_the_cluster_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "cluster"} <= set(variables)
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'namespace=~"$namespace"' in target["expr"] or "operator_reconciles" in target["expr"] \
                or "operator_errors" in target["expr"], (panel["title"], target["expr"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"monitoring": {"enabled": True, "grafanaDashboard": {"label": "not a label"}}}, "label"),
        ({"monitoring": {"enabled": True, "interval": "often"}}, "interval"),
        ({"monitoring": {"podMonitor": {"enabled": True}}}, "podMonitor"),
    ],
)
def test_bad_monitoring_values_are_refused(helm: str, values: dict, message: str) -> None:
    proc = run([helm, "template", "x", str(CHART), *set_args(values)], check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
