"""``kubectl sdc``'s pure parts: arguments, kubectl command lines, snippets, the status view, scaling, the recipe."""

from __future__ import annotations

import datetime
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from seamless_dask_runtime.launcher.kubectl_plugin import views
from seamless_dask_runtime.launcher.kubectl_plugin.cli import (
    build_parser,
    kubectl_flags,
    logs_arguments,
    preferred_port,
    recipe_options,
)
from seamless_dask_runtime.launcher.kubectl_plugin.kubectl import forwarded_ports
from seamless_dask_runtime.launcher.kubectl_plugin.recipe import (
    ADDRESS_VARIABLE,
    CLUSTERS_FILE,
    ENVIRONMENT,
    K8S_CLUSTER_STRING,
    PROJECT_FILE,
    RecipeOptions,
    environment,
    recipe_sections,
    recipe_text,
)

README = Path(__file__).resolve().parents[2] / "README.md"
NOW = datetime.datetime(2026, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


# -- arguments -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["-n", "team-a", "--context", "lab", "status", "demo"],
    ["status", "demo", "-n", "team-a", "--context", "lab"],
    ["--context=lab", "status", "-n", "team-a", "demo"],
])
def test_connection_flags_work_before_and_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.command, args.name, args.namespace) == ("status", "demo", "team-a")
    assert kubectl_flags(args) == ("--context=lab",)


def test_without_flags_kubectl_decides() -> None:
    args = build_parser().parse_args(["dashboard", "demo"])
    assert not hasattr(args, "namespace") and kubectl_flags(args) == ()
    args = build_parser().parse_args(["logs", "demo", "--kubeconfig", "/tmp/k"])
    assert kubectl_flags(args) == ("--kubeconfig=/tmp/k",)


def test_logs_scheduler_and_workers_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["logs", "demo", "--scheduler", "--workers"])
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(("options", "selector", "extra"), [
    ({}, "dask.org/cluster-name=demo", []),
    ({"scheduler": True}, "dask.org/cluster-name=demo,dask.org/component=scheduler", []),
    ({"workers": True}, "dask.org/cluster-name=demo,dask.org/component=worker", []),
    ({"follow": True, "pods": 9}, "dask.org/cluster-name=demo", ["-f", "--max-log-requests=9"]),
    ({"follow": True, "pods": 2}, "dask.org/cluster-name=demo", ["-f", "--max-log-requests=5"]),
    ({"since": "10m"}, "dask.org/cluster-name=demo", ["--since=10m"]),
])
def test_logs_arguments(options: dict, selector: str, extra: list[str]) -> None:
    given = {"scheduler": False, "workers": False, "follow": False, "tail": -1, "since": None, "pods": 1, **options}
    assert logs_arguments("demo", "team-a", **given) == [
        "logs", "-n", "team-a", "-l", selector, "--prefix", "--all-containers", "--tail=-1", "--ignore-errors",
        *extra]


def test_preferred_port() -> None:
    assert preferred_port(9000, 8787, lambda p: False) == 9000
    assert preferred_port(None, 8787, lambda p: True) == 8787
    assert preferred_port(None, 8787, lambda p: False) == 0  # kubectl picks a free one


def test_forwarded_ports_from_kubectl_output() -> None:
    lines = ["Forwarding from 127.0.0.1:41234 -> 8786\n", "Forwarding from 127.0.0.1:8787 -> 8787\n",
             "Forwarding from [::1]:41234 -> 8786\n", "Handling connection for 8786\n"]
    assert forwarded_ports(lines) == {8786: 41234, 8787: 8787}
    assert forwarded_ports(["error: unable to forward port"]) == {}


# -- client --------------------------------------------------------------------------------------------------
def resource(**spec: object) -> dict:
    return {"metadata": {"name": "demo", "namespace": "team-a", "creationTimestamp": "2026-05-01T11:00:00Z"},
            "spec": {"image": "seamless-dask-runtime:0.1.0", "workers": {"replicas": 2, "maximum": 4}, **spec},
            "status": {}}


def test_client_snippet_is_python_that_connects_to_the_address() -> None:
    snippet = views.client_snippet(resource(), "tcp://127.0.0.1:8786")
    compile(snippet, "snippet", "exec")
    assert 'Client("tcp://127.0.0.1:8786")' in snippet
    assert views.local_address(resource(), 8786) == "tcp://127.0.0.1:8786"
    assert views.in_cluster_address(resource()) == "tcp://demo-scheduler.team-a.svc:8786"


def test_tls_client_snippet_fetches_the_secret_and_uses_it() -> None:
    tls = resource(tls={"enabled": True})
    assert views.local_address(tls, 8786) == "tls://127.0.0.1:8786"
    snippet = views.client_snippet(tls, "tls://127.0.0.1:8786")
    compile(snippet, "snippet", "exec")
    commands = [line.removeprefix("# ") for line in snippet.splitlines() if line.startswith("# kubectl")]
    assert [shlex.split(c)[:6] for c in commands] == [["kubectl", "get", "secret", "demo-tls", "-n", "team-a"]] * 3
    assert {shlex.split(c)[7] for c in commands} == {r"jsonpath={.data.ca\.pem}", r"jsonpath={.data.tls\.crt}",
                                                      r"jsonpath={.data.tls\.key}"}
    assert 'tls_ca_file="demo-ca.pem"' in snippet and "require_encryption=True" in snippet


# -- status -------------------------------------------------------------------------------------------------
def pod(name: str, ready: bool = True, phase: str = "Running", restarts: int = 0) -> dict:
    return {"metadata": {"name": name}, "status": {
        "phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [{"restartCount": restarts}]}}


def event(kind: str, name: str, reason: str, when: str, message: str = "m", type_: str = "Normal") -> dict:
    return {"involvedObject": {"kind": kind, "name": name}, "reason": reason, "type": type_,
            "lastTimestamp": when, "message": message}


IDENTITY = {"workers": {
    "tcp://10.244.0.7:40000": {"name": "demo-worker-0", "nthreads": 3, "memory_limit": 2 * 2**30,
                               "metrics": {"memory": 150 * 2**20, "managed_bytes": 2**20,
                                           "spilled_bytes": {"memory": 0, "disk": 0}}},
    "tcp://10.1.2.3:40000": {"name": "worker-4242", "nthreads": 1, "memory_limit": 0,
                             "metrics": {"memory": 2**30, "managed_bytes": 0, "spilled_bytes": {"disk": 2**20}}},
}}


def test_status_view_shows_phase_conditions_workers_memory_and_recent_events() -> None:
    body = resource()
    body["status"] = {"phase": "Running", "reason": "SchedulerReady", "workersReady": 1, "workersDesired": 2,
                      "schedulerAddress": "tcp://demo-scheduler.team-a.svc:8786",
                      "dashboardUrl": "http://demo-scheduler.team-a.svc:8787/status",
                      "conditions": [{"type": "PodsHealthy", "status": "False", "reason": "ImagePullBackOff",
                                      "message": "demo-worker-1: image not found",
                                      "lastTransitionTime": "2026-05-01T11:58:00Z"}]}
    pods = [pod("demo-scheduler"), pod("demo-worker-0", restarts=1), pod("demo-worker-1", ready=False,
                                                                          phase="Pending")]
    events = [event("Pod", "demo-worker-1", "Failed", "2026-05-01T11:59:30Z", "Back-off pulling image", "Warning"),
              event("SeamlessDaskCluster", "demo", "Created", "2026-05-01T11:00:05Z"),
              event("Pod", "demo2-worker-0", "Pulled", "2026-05-01T11:59:59Z"),  # another cluster's
              event("SeamlessDaskCluster", "other", "Created", "2026-05-01T11:59:59Z")]
    text = views.render_status(body, pods, events, IDENTITY, "from the scheduler", NOW)
    lines = text.splitlines()
    assert lines[0] == "SeamlessDaskCluster team-a/demo: Running (SchedulerReady), age 1h"
    assert "1 ready / 2 desired (replicas 2)" in text
    assert re.search(r"PodsHealthy\s+False\s+ImagePullBackOff\s+2m\s+demo-worker-1: image not found", text)
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("  demo-worker-")}
    assert rows["demo-worker-0"][:5] == ["demo-worker-0", "Running", "True", "1", "3"]
    assert "150.0 MiB / 2.0 GiB" in next(line for line in lines if line.startswith("  demo-worker-0"))
    assert rows["demo-worker-1"][:4] == ["demo-worker-1", "Pending", "False", "0"]
    assert "not connected" in next(line for line in lines if line.startswith("  demo-worker-1"))
    assert any(line.startswith("  worker-4242") and "1.0 MiB" in line for line in lines)  # a Dask worker, no pod
    recent = text.split("Recent events:")[1]
    assert "pod/demo-worker-1" in recent and "seamlesscluster" not in recent
    assert recent.index("Created") < recent.index("Back-off pulling image")  # oldest first
    assert "demo2-worker-0" not in recent and "other" not in recent


def test_status_view_without_the_scheduler_says_why() -> None:
    text = views.render_status(resource(), [], [], None, "the scheduler is not Running", NOW)
    assert "Pending" in text.splitlines()[0]
    assert "Workers (the scheduler is not Running):\n  (none)" in text
    assert "Conditions:\n  (none yet)" in text


def test_event_limit_keeps_the_most_recent() -> None:
    events = [event("Pod", "demo-worker-0", f"R{i}", f"2026-05-01T11:{i:02d}:00Z") for i in range(30)]
    assert [e["reason"] for e in views.cluster_events(events, "demo", 3)] == ["R27", "R28", "R29"]
    assert views.cluster_events(events, "demo", 0) == []


@pytest.mark.parametrize(("then", "expected"), [
    ("2026-05-01T11:59:15Z", "45s"), ("2026-05-01T11:57:00Z", "3m"), ("2026-04-29T12:00:00Z", "2d"), (None, "?")])
def test_age(then: str | None, expected: str) -> None:
    assert views.age(then, NOW) == expected


# -- scale --------------------------------------------------------------------------------------------------
def test_scale_patches() -> None:
    manual = resource()
    assert views.scale_patch(manual, 3, None, None, None) == {"spec": {"workers": {"replicas": 3}}}
    assert views.scale_patch(manual, None, 1, 6, True) == {
        "spec": {"workers": {"minimum": 1, "maximum": 6, "adaptive": True}}}
    adaptive = resource(workers={"adaptive": True, "minimum": 0, "maximum": 4})
    with pytest.raises(ValueError, match=r"adaptive between 0 and 4 workers.*--no-adaptive --replicas N"):
        views.scale_patch(adaptive, 3, None, None, None)
    assert views.scale_patch(adaptive, 3, None, None, False) == {"spec": {"workers": {"replicas": 3,
                                                                                       "adaptive": False}}}
    with pytest.raises(ValueError, match="nothing to change"):
        views.scale_patch(manual, None, None, None, None)


# -- recipe -------------------------------------------------------------------------------------------------
README_COMMAND = re.compile(r"```bash\n(kubectl sdc recipe [^`]*?)```\n\n```bash\n(.*?)```", re.S)


def test_readme_recipe_is_the_commands_output() -> None:
    match = README_COMMAND.search(README.read_text())
    assert match, "README: a `kubectl sdc recipe ...` block followed by its output"
    argv = shlex.split(match.group(1).replace("\\\n", " "))[2:]
    args = build_parser().parse_args(argv)
    assert match.group(2) == recipe_text(recipe_options(args, args.namespace))


OPTIONS = RecipeOptions(namespace="team-a", image="reg.example/rt:1-seamless", data_dir="/srv/seamless data",
                        services_address="10.244.0.1", cluster="k8s", project="proj", conda="seamless-venv",
                        cores=1, memory="1GB", maximum_jobs=1, interactive=True, port_start=62000, port_end=62999)


def test_recipe_files_are_what_seamless_config_reads() -> None:
    from seamless_config.cluster import Cluster

    sections = recipe_sections(recipe_text(OPTIONS))
    assert set(sections) == {CLUSTERS_FILE, PROJECT_FILE, ENVIRONMENT}
    clusters = yaml.safe_load(sections[CLUSTERS_FILE])
    assert clusters["local_cluster"] == "k8s"
    cluster = Cluster.from_dict("k8s", clusters["k8s"])  # seamless-config's own parser
    frontend = cluster.frontends[0]
    assert cluster.type == "local" and frontend.hostname == "localhost"
    assert frontend.hashserver.network_interface == frontend.database.network_interface == "10.244.0.1"
    assert frontend.hashserver.bufferdir == "/srv/seamless data/buffers"
    assert frontend.daskserver.network_interface == "127.0.0.1"
    queue = cluster.queues["default"]
    assert (queue.conda, queue.cores, queue.memory, queue.maximum_jobs, queue.interactive) == (
        "seamless-venv", 1, "1GB", 1, True)
    assert yaml.safe_load(sections[PROJECT_FILE]) == [{"cluster": "k8s"}, {"project": "proj"},
                                                      {"execution": "remote"}, {"remote": "daskserver"}]


def test_recipe_environment_text_is_what_a_shell_exports() -> None:
    lines = recipe_sections(recipe_text(OPTIONS))[ENVIRONMENT]
    out = subprocess.run(["bash", "-c", lines + "env -0"], capture_output=True, text=True, check=True, env={}).stdout
    exported = dict(item.split("=", 1) for item in out.split("\0") if item and not item.startswith(("PWD=", "SHLVL=",
                                                                                                       "_=")))
    assert exported == environment(OPTIONS)
    assert json.loads(exported["SEAMLESS_DASK_PARAMETERS"]) == {"namespace": "team-a",
                                                                "image": "reg.example/rt:1-seamless"}


def test_recipe_names_the_wrappers_kubernetes_backend() -> None:
    from seamless_dask_runtime import kubernetes
    from seamless_dask_runtime.launcher.wrapper.cluster_string import resolve

    assert resolve(K8S_CLUSTER_STRING) is kubernetes.SeamlessDaskCluster
    assert ADDRESS_VARIABLE == kubernetes.ADDRESS_VARIABLE


def test_recipe_without_an_address_says_what_to_replace() -> None:
    text = recipe_text(RecipeOptions(namespace="a", image="b", data_dir="/d"))
    assert "Replace ADDRESS-THE-PODS-REACH" in text
    assert "ADDRESS-THE-PODS-REACH" in recipe_sections(text)[CLUSTERS_FILE]
