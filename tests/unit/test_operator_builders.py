"""Pure builders: a spec in, exact Kubernetes objects out (golden files).

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/unit/test_operator_builders.py``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from seamless_dask_operator.builders import ClusterRef, scheduler_pod, scheduler_service, worker_pod
from seamless_dask_operator.builders.workers import worker_environment_for_pod
from seamless_dask_operator.resource import parse_spec

from seamless_dask_runtime.identity import TEMPLATE_HASH_ANNOTATION
from seamless_dask_runtime.jobqueue import render_job_script
from seamless_dask_runtime.parameters import ParameterError, from_status_parameters

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
    assert {k: v for k, v in _env(container).items()} == worker_environment_for_pod(cluster)


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
