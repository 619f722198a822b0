"""Every query of the chart's Grafana dashboard names metrics (and labels) that real endpoints serve.

A real operator (kopf, against the real kube-apiserver) serves one healthy
cluster and one it refuses; that cluster's scheduler and worker run as real
``dask scheduler``/``dask worker`` processes from the pod specs the operator
built (the kubelet's part done here, as in tests/operator/test_real_dask.py),
and compute a little. Then the operator's, the scheduler's and the worker's
``/metrics`` are scraped and parsed with prometheus-client's text parser, and
every PromQL expression of the dashboard (panels and template variables) is
parsed with a real PromQL parser (promql-parser): each metric it selects must
be served, and each label it matches or groups by must be on that metric or be
one Prometheus adds to the target (the chart's PodMonitor relabelings included).
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from distributed import Client
from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from tests.chart._helm import CHART, find_tool, render
from tests.operator.conftest import Clusters, running_operator
from tests.support.kubelet import make_pod_ready
from tests.support.pods import start_container, stop_process
from tests.support.ports import free_port
from tests.support.waiting import wait_for

promql = pytest.importorskip("promql_parser", reason="promql-parser (PyPI) parses the dashboard's PromQL")
pytestmark = [pytest.mark.kube, pytest.mark.slow]
DASHBOARD = CHART / "dashboards" / "seamless-dask.json"
# Labels Prometheus (through the Prometheus operator's ServiceMonitor/PodMonitor) puts on every scraped series.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "container", "endpoint", "service"})
GRAFANA_INTERVALS = re.compile(r"\$__(rate_interval|interval|range)\b")
LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$")


# -- what a scrape serves, and what a query uses (pure) ----------------------------------------------------
def served(texts: Iterable[str]) -> dict[str, set[str]]:
    """Metric name (as PromQL sees it) → the label names it carries, over all scrapes.

    A declared family without samples yet (a counter with labels nothing incremented) is served too, under the
    names its type exposes; its labels are unknown then.
    """
    names: dict[str, set[str]] = {}
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum"),
                "summary": ("", "_count", "_sum"), "info": ("_info",), "untyped": ("",)}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for suffix in suffixes.get(family.type, ("",)):
                names.setdefault(family.name + suffix, set())
            for sample in family.samples:
                names.setdefault(sample.name, set()).update(sample.labels)
    return names


@dataclass
class Use:
    """What one expression needs: metrics, and labels on them (a label is needed on any of a group)."""

    metrics: set[str] = field(default_factory=set)
    labels: list[tuple[str, frozenset[str]]] = field(default_factory=list)  # (label, metrics that may carry it)


def _selectors(node: Any) -> list[Any]:
    found: list[Any] = []
    promql.walk(node, lambda n: found.append(n) if isinstance(n, promql.VectorSelector) else None)
    return found


def _name(selector: Any) -> str:
    if selector.name:
        return str(selector.name)
    named = [m.value for m in selector.matchers.matchers if m.name == "__name__"]
    assert named, f"a selector without a metric name: {selector}"
    return str(named[0])


def uses(expression: str) -> Use:
    """The metrics and labels a dashboard expression (PromQL, or Grafana's ``label_values``) uses."""
    expression = GRAFANA_INTERVALS.sub("5m", expression)
    extra_label = None
    match = LABEL_VALUES.match(expression)
    if match:
        expression, extra_label = match["selector"], match["label"]
    tree = promql.parse(expression)
    use = Use()

    def visit(node: Any) -> None:
        if isinstance(node, promql.VectorSelector):
            use.metrics.add(_name(node))
            use.labels += [(m.name, frozenset({_name(node)})) for m in node.matchers.matchers if m.name != "__name__"]
        elif isinstance(node, promql.AggregateExpr) and node.modifier is not None:
            inner = frozenset(_name(s) for s in _selectors(node.expr))
            use.labels += [(label, inner) for label in node.modifier.labels]

    promql.walk(tree, visit)
    if extra_label is not None:
        use.labels.append((extra_label, frozenset(use.metrics)))
    return use


def problems(expressions: Iterable[str], serving: Mapping[str, set[str]], target_labels: set[str]) -> list[str]:
    """What the expressions use that nothing serves (empty: all is served)."""
    found = []
    for expression in expressions:
        use = uses(expression)
        found += [f"{expression}: no endpoint serves {metric}" for metric in sorted(use.metrics - serving.keys())]
        for label, metrics in use.labels:
            carried = set(target_labels).union(*(serving.get(m, set()) for m in metrics))
            declared_only = any(m in serving and not serving[m] for m in metrics)
            if label not in carried and not declared_only:
                found.append(f"{expression}: no series of {sorted(metrics)} has the label {label}")
    return found


def dashboard_expressions(dashboard: Mapping[str, Any]) -> list[str]:
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            expressions.append(query["query"] if isinstance(query, dict) else query)
    return expressions


def test_the_check_finds_unknown_metrics_and_labels() -> None:
    serving = served(["# TYPE dask_scheduler_workers gauge\ndask_scheduler_workers{state=\"idle\"} 1.0\n"
                      "# TYPE x_errors counter\n"])
    ok = ['sum by (state) (dask_scheduler_workers{cluster=~"$cluster"})', "rate(x_errors_total[$__rate_interval])",
          "sum by (reason) (rate(x_errors_total[5m]))", "label_values(dask_scheduler_workers, cluster)"]
    assert problems(ok, serving, {"cluster"}) == []
    bad = ["dask_scheduler_worker", "sum by (phase) (dask_scheduler_workers)",
           'dask_scheduler_workers{kind="x"}', "label_values(dask_scheduler_workers, pod)"]
    assert len(problems(bad, serving, {"cluster"})) == len(bad)


# -- the real endpoints ----------------------------------------------------------------------------------------
def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def pod_monitor_target_labels() -> set[str]:
    """The labels the chart's PodMonitors add by relabeling (rendered by the real helm)."""
    helm = find_tool("helm")
    if helm is None:
        pytest.skip("helm is not on PATH (scripts/get-k8s-tools.sh)")
    monitors = [o for o in render(helm, {"monitoring": {"enabled": True}}) if o["kind"] == "PodMonitor"]
    return {r["targetLabel"] for m in monitors for e in m["spec"]["podMetricsEndpoints"] for r in e["relabelings"]}


@pytest.fixture
def namespace(kube_api: k8s.ApiClient) -> Iterator[str]:
    name = f"dash-{uuid.uuid4().hex[:6]}"
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: core.list_namespaced_service_account(name).items, timeout=30, description="service account")
    yield name
    core.delete_namespace(name)


def test_every_dashboard_query_names_served_metrics(control_plane: Any, kube_api: k8s.ApiClient, namespace: str,
                                                    tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    target_labels = TARGET_LABELS | pod_monitor_target_labels()
    clusters = Clusters(kube_api, namespace)
    comm, scheduler_http, worker_http = free_port(), int(os.environ["SEAMLESS_DASK_OPERATOR_DASHBOARD_PORT"]), \
        free_port()
    processes = []
    with running_operator(control_plane):
        clusters.create("dash", {"cores": 1, "workers": {"replicas": 1}})
        # Refused by the operator's pod policy: a Failed cluster and an error counted.
        clusters.create("refused", {"volumes": [{"name": "host", "hostPath": {"path": "/"}}]})
        replace = {":8787": f":{scheduler_http}", "8786": str(comm), ":8788": f":{worker_http}",
                   f"tcp://dash-scheduler.{namespace}.svc:8786": f"tcp://127.0.0.1:{comm}"}
        try:
            for component in ("scheduler", "worker"):
                pod = wait_for(lambda c=component: clusters.pods("dash", c), timeout=30, description=component)[0]
                container = kube_api.sanitize_for_serialization(pod.spec.containers[0])
                processes.append(start_container(container, pod.metadata.name, replace,
                                                 str(tmp_path / f"{component}.log")))
                make_pod_ready(kube_api, namespace, pod.metadata.name, "node-1", pod_ip="127.0.0.1")
            clusters.wait_status("dash", lambda s: s.get("phase") == "Running" and s.get("workersReady") == 1,
                                 timeout=60, description="Running with its worker")
            clusters.wait_status("refused", lambda s: s.get("phase") == "Failed", timeout=30, description="Failed")
            with Client(f"tcp://127.0.0.1:{comm}", timeout=30) as dask:
                assert sum(dask.gather(dask.map(pow, range(20), [2] * 20))) == sum(i * i for i in range(20))
            texts = {"operator": scrape(int(os.environ["SEAMLESS_DASK_OPERATOR_METRICS_PORT"])),
                     "scheduler": scrape(scheduler_http), "worker": scrape(worker_http)}
        finally:
            for proc in processes:
                stop_process(proc)
    serving = served(texts.values())
    # The scrapes are real: each endpoint's own series are there.
    for endpoint, prefix in (("operator", "seamless_dask_operator_"), ("scheduler", "dask_scheduler_"),
                             ("worker", "dask_worker_")):
        assert prefix in texts[endpoint], endpoint
    assert 'phase="Failed"' in texts["operator"] and "seamless_dask_operator_errors_total{" in texts["operator"]
    expressions = dashboard_expressions(dashboard)
    assert len(expressions) >= 20
    assert problems(expressions, serving, target_labels) == []
    # Every endpoint feeds the dashboard.
    used = set().union(*(uses(e).metrics for e in expressions))
    for prefix in ("seamless_dask_operator_", "dask_scheduler_", "dask_worker_"):
        assert any(m.startswith(prefix) for m in used), prefix
