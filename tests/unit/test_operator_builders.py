"""Pure builders: a spec in, exact Kubernetes objects out (golden files).

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/unit/test_operator_builders.py``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from seamless_dask_operator.builders import (
    ClusterRef,
    desired_children,
    scheduler_disruption_budget,
    scheduler_pod,
    scheduler_service,
    worker_pod,
)
from seamless_dask_operator.builders.scheduler import KEEP_ON_NODE_ANNOTATIONS
from seamless_dask_operator.builders.workers import worker_environment_for_pod
from seamless_dask_operator.resource import parse_spec

from seamless_dask_runtime.launcher.jobqueue import render_job_script
from seamless_dask_runtime.model.commands import STOP_SIGNAL_PRELOAD
from seamless_dask_runtime.model.identity import CLOSE_MARGIN, RETIRE_BUDGET_VARIABLE, TEMPLATE_HASH_ANNOTATION
from seamless_dask_runtime.model.parameters import ParameterError, from_status_parameters

GOLDEN = Path(__file__).parent.parent / "golden" / "operator"
REF = ClusterRef(name="demo", namespace="science", uid="0000-uid")
SPECS = {
    "minimal": {},
    "seamless": {"cores": 24, "memory": "54000MB", "walltime": "01:00:00", "interactive": True, "tmpdir": "/tmp",
                 "workers": {"replicas": 2, "maximum": 10}},
    "pure-dask": {"pureDask": True, "cores": 4, "memory": "8GiB", "workers": {"replicas": 3, "maximum": 4}},
    "read-buffer": {"cores": 2, "volumes": [{"name": "buffer", "persistentVolumeClaim": {"claimName": "hashserver"}}],
                    "volumeMounts": [{"name": "buffer", "mountPath": "/buffer", "readOnly": True}]},
}


def _objects(name: str) -> dict:
    cluster = parse_spec(SPECS[name])
    return {
        "scheduler": scheduler_pod(REF, cluster),
        "service": scheduler_service(REF, cluster),
        "worker": worker_pod(REF, cluster, 0),
        "disruption_budget": scheduler_disruption_budget(REF),
    }


@pytest.mark.parametrize("name", sorted(SPECS))
def test_golden_objects(name: str) -> None:
    path = GOLDEN / f"{name}.yaml"
    objects = _objects(name)
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(yaml.safe_dump(objects, sort_keys=True))
    assert objects == yaml.safe_load(path.read_text())


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_worker_pod_environment_equals_job_script_environment() -> None:
    status_parameters = {"cores": 24, "memory": "54000MB", "walltime": "01:00:00", "maximum_jobs": 10,
                         "interactive": True, "tmpdir": "/tmp"}
    script = render_job_script(from_status_parameters(status_parameters), "slurm")
    exported = dict(line.removeprefix("export ").split("=", 1) for line in script.splitlines()
                    if line.startswith("export "))
    pod_env = _env(_objects("seamless")["worker"]["spec"]["containers"][0])
    # Same variables, same values; only the CPU count's source differs (Slurm variable vs number).
    assert exported.pop("PYTHON_CPU_COUNT") == "$SLURM_JOB_CPUS_PER_NODE"
    assert pod_env.pop("PYTHON_CPU_COUNT") == "24"
    assert pod_env.pop(RETIRE_BUDGET_VARIABLE) == "120"  # pods only: what SIGTERM leaves a worker (drain.py)
    assert pod_env == exported


def test_pure_dask_pods_are_plain_dask() -> None:
    objects = _objects("pure-dask")
    worker = objects["worker"]["spec"]["containers"][0]
    scheduler = objects["scheduler"]["spec"]["containers"][0]
    assert not [n for n in _env(worker) if n.startswith("SEAMLESS_")]
    assert "--preload" not in scheduler["args"]
    assert worker["args"][:4] == ["dask", "worker", "--nthreads", "2"]


def test_seamless_scheduler_preloads_plugin_and_throttle() -> None:
    scheduler = _objects("seamless")["scheduler"]["spec"]["containers"][0]
    assert scheduler["args"][-2:] == ["--preload", "seamless_dask_runtime.scheduler_preload"]
    assert _env(scheduler)["SEAMLESS_WORKER_TRANSFORMATION_THROTTLE"] == "3"


def test_every_child_is_owned_and_secure() -> None:
    for obj in _objects("seamless").values():
        assert obj["metadata"]["ownerReferences"][0]["uid"] == REF.uid
        assert obj["metadata"]["ownerReferences"][0]["controller"] is True
    for pod_spec in (_objects("seamless")["worker"]["spec"],
                     _objects("seamless")["scheduler"]["spec"]):
        assert pod_spec["securityContext"]["runAsNonRoot"] is True
        assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        container = pod_spec["containers"][0]["securityContext"]
        assert container["capabilities"] == {"drop": ["ALL"]}
        assert container["allowPrivilegeEscalation"] is False


def test_service_is_cluster_internal_by_default() -> None:
    service = _objects("minimal")["service"]
    assert service["spec"]["type"] == "ClusterIP"
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("tcp-comm", 8786), ("http-dashboard", 8787)]


def test_worker_environment_helper_is_the_runtime_function() -> None:
    cluster = parse_spec(SPECS["seamless"])
    container = _objects("seamless")["worker"]["spec"]["containers"][0]
    pod_env = _env(container)
    assert pod_env.pop(RETIRE_BUDGET_VARIABLE) == "120"
    assert pod_env == worker_environment_for_pod(cluster)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"unknownTaskDuration": "soon"}, "spec.unknownTaskDuration"),
        ({"workers": {"replicas": 5, "maximum": 2}}, "spec.workers.replicas"),
        ({"workers": {"minimum": 3, "maximum": 2, "adaptive": True}}, "spec.workers.minimum"),
        ({"cores": 0}, "spec.cores"),
    ],
)
def test_bad_spec_names_field(spec: dict, field: str) -> None:
    with pytest.raises(ParameterError) as info:
        parse_spec(spec)
    assert field in str(info.value)


@pytest.mark.parametrize("edit", [
    {"workers": {"replicas": 1, "maximum": 8}},
    {"timeout": 60},
    {"walltime": "02:00:00"},
    {"interactive": True},
    {"memory": "8GiB"},
    {"workers": {"adaptive": True, "minimum": 0, "maximum": 5}},
    {"transformationThrottle": 5},  # new workers report it to the scheduler's throttle
])
def test_scaling_and_timeout_edits_never_restart_the_scheduler(edit: dict) -> None:
    """The scheduler pod's template hash is the same: its pod stays, and so do clients and results."""
    ref = ClusterRef("c", "ns", "uid")
    base = {"cores": 1, "walltime": "01:00:00", "workers": {"replicas": 1, "maximum": 2}}
    before = scheduler_pod(ref, parse_spec(base))
    after = scheduler_pod(ref, parse_spec({**base, **edit}))
    assert after == before


def test_what_the_scheduler_reads_does_restart_it() -> None:
    ref = ClusterRef("c", "ns", "uid")
    base = {"cores": 1, "workers": {"replicas": 1, "maximum": 2}}
    before = scheduler_pod(ref, parse_spec(base))["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION]
    after = scheduler_pod(ref, parse_spec({**base, "targetDuration": "5m"}))["metadata"]["annotations"]
    assert after[TEMPLATE_HASH_ANNOTATION] != before


@pytest.mark.parametrize("retire_timeout", [1, 120, 600])
def test_a_stopped_worker_pod_has_its_retire_timeout_to_move_its_results(retire_timeout: int) -> None:
    """SIGTERM (eviction, drain) retires the worker through the scheduler for up to retireTimeout seconds
    (the nanny's preload), and the kubelet's SIGKILL waits for that and Dask's own close after it."""
    pod = worker_pod(REF, parse_spec({"workers": {"retireTimeout": retire_timeout}}), 0)
    container = pod["spec"]["containers"][0]
    assert container["args"][container["args"].index("--preload-nanny") + 1] == STOP_SIGNAL_PRELOAD
    assert _env(container)[RETIRE_BUDGET_VARIABLE] == str(retire_timeout)
    assert pod["spec"]["terminationGracePeriodSeconds"] == retire_timeout + CLOSE_MARGIN


def test_job_scripts_keep_seed_002s_worker_command() -> None:
    """HPC workers retire before the walltime through their lifetime; their command line stays seed 002's."""
    script = render_job_script(from_status_parameters({"cores": 2, "memory": "4GB", "walltime": "01:00:00",
                                                         "maximum_jobs": 3}),
                               "slurm")
    assert "--preload-nanny" not in script and RETIRE_BUDGET_VARIABLE not in script


def _selects(budget: dict, pod: dict) -> bool:
    return budget["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()


def test_the_disruption_budget_keeps_the_scheduler_and_only_it() -> None:
    """Eviction of the scheduler is refused (minAvailable 1 of one pod); workers, a rollout's candidate (not
    serving yet) and another cluster's scheduler are not covered."""
    cluster = parse_spec(SPECS["seamless"])
    budget = scheduler_disruption_budget(REF)
    assert budget["spec"]["minAvailable"] == 1
    assert budget["metadata"]["ownerReferences"] == [REF.owner_reference()]
    assert _selects(budget, scheduler_pod(REF, cluster))
    assert not _selects(budget, scheduler_pod(REF, cluster, candidate=True))
    assert not _selects(budget, worker_pod(REF, cluster, 0))
    assert not _selects(budget, scheduler_pod(ClusterRef("other", REF.namespace, "other-uid"), cluster))


def test_the_disruption_budget_is_applied_with_the_other_children() -> None:
    children = desired_children(REF, parse_spec({}))
    assert [c["kind"] for c in children] == ["Service", "NetworkPolicy", "PodDisruptionBudget"]
    assert len({c["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION] for c in children}) == 1


def test_node_autoscalers_leave_the_scheduler_without_restarting_it() -> None:
    """The annotations are metadata: the template hash (a change restarts the scheduler, losing results) is the
    one running schedulers carry, and a user's podAnnotations cannot switch them off."""
    cluster = parse_spec({"podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"}})
    pod = scheduler_pod(REF, cluster)
    assert KEEP_ON_NODE_ANNOTATIONS.items() <= pod["metadata"]["annotations"].items()
    assert pod["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION] == \
        scheduler_pod(REF, parse_spec({}))["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION]
    # Workers retire when evicted: the autoscalers may move them.
    assert not KEEP_ON_NODE_ANNOTATIONS.keys() & worker_pod(REF, parse_spec({}), 0)["metadata"]["annotations"].keys()
