"""Any input either translates all the way or fails with errors that name their fields; nothing else escapes."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import string
import tempfile
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seamless_dask_operator.builders import ClusterRef, scheduler_pod, worker_pod
from seamless_dask_operator.decide import ApplyChild, Observation, decide
from seamless_dask_operator.resource import parse_spec

from seamless_dask_runtime.launcher.jobqueue import BATCH_SYSTEMS, render_job_script
from seamless_dask_runtime.launcher.statusfile import StatusFile, StatusFileError
from seamless_dask_runtime.model.durations import parse_duration
from seamless_dask_runtime.model.parameters import PARAMETER_TABLE, ParameterError, from_status_parameters
from seamless_dask_runtime.model.status import ClusterStatus, Phase

JSON_SCALARS = st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=False) | \
    st.text(string.printable, max_size=12)
JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3) |
                    st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
PLAUSIBLE = {
    "cores": st.integers(-2, 64), "memory": st.sampled_from(["1GB", "54000MB", "4GiB", "lots", "0", "-1GB"]),
    "walltime": st.sampled_from(["01:00:00", "00:04:00", "1-00:00:00", "55m", "1h", "3600", 3600, "soon",
                                 "99:99:99", "0"]),
    "maximum_jobs": st.integers(-1, 20), "interactive": st.sampled_from([True, False, "yes", 3]),
    "pure_dask": st.booleans(), "exclusive": st.booleans(), "transformation_throttle": st.integers(-1, 8),
    "internal-port-range": st.sampled_from(["60000:60100", "9:8", [1, 2], "x"]),
    "dask-resources": st.sampled_from([{"GPU": 1}, {"S": -1}, {"S": 2.5}, "S"]),
    "partition": st.text(string.ascii_letters, max_size=6), "tmpdir": st.sampled_from(["/tmp", "rel", "/scratch"]),
}
KEYS = [p.status_key for p in PARAMETER_TABLE]


def _raw_parameters() -> st.SearchStrategy[dict]:
    plausible = st.fixed_dictionaries({}, optional=PLAUSIBLE)
    arbitrary = st.dictionaries(st.sampled_from([*KEYS, "bogus", "Cores"]), JSON, max_size=6)
    return plausible | arbitrary


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_raw_parameters())
def test_status_parameters_translate_or_name_the_field(raw: dict) -> None:
    try:
        params = from_status_parameters(raw)
    except ParameterError as exc:
        assert exc.errors and all(e.field.startswith("parameters") for e in exc.errors)
        return
    for system in BATCH_SYSTEMS:
        try:
            script = render_job_script(params, system)
        except ParameterError as exc:  # memory is required for batch systems, and the model knows no system
            assert all(e.field.startswith("parameters.") for e in exc.errors)
        else:  # the model is the only validator: whatever it accepted translates (no ValueError from sizing)
            assert "dask worker" in script


VOLUME_SOURCES = st.sampled_from(["emptyDir", "hostPath", "secret", "projected", "configMap", "nfs", "csi"])
# What a hostile or careless user puts where the pod policy looks: volumes, projections, env, accounts, Services.
POLICY_FIELDS = st.fixed_dictionaries({}, optional={
    "volumes": st.lists(st.dictionaries(st.just("name") | VOLUME_SOURCES, JSON | st.fixed_dictionaries(
        {"sources": st.lists(st.dictionaries(VOLUME_SOURCES | st.just("serviceAccountToken"), JSON), max_size=2)}),
        max_size=2), max_size=2) | JSON,
    "workers": st.fixed_dictionaries({}, optional={"env": st.lists(st.dictionaries(
        st.sampled_from(["name", "value", "valueFrom"]), JSON | st.just("SEAMLESS_WORKER_TRANSFORMATION_THROTTLE")
        | st.fixed_dictionaries({"secretKeyRef": JSON})), max_size=3) | JSON}),
    "scheduler": st.fixed_dictionaries({}, optional={"serviceType": JSON | st.sampled_from(["LoadBalancer",
                                                                                            "ClusterIP"]),
                                                     "allowFrom": JSON}),
    "serviceAccountName": JSON, "podAnnotations": JSON | st.dictionaries(
        st.sampled_from(["container.apparmor.security.beta.kubernetes.io/worker", "a"]), JSON, max_size=2),
})


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["cores", "memory", "workers", "pureDask", "unknownTaskDuration",
                                        "volumes", "timeout", "image", "bogus"]), JSON, max_size=5)
       | st.fixed_dictionaries({"walltime": PLAUSIBLE["walltime"],
                                "workers": st.fixed_dictionaries({"maximum": st.integers(1, 4)})})
       | POLICY_FIELDS)
def test_resource_specs_build_or_name_the_field(spec: dict) -> None:
    try:
        cluster = parse_spec(spec)
    except ParameterError as exc:
        assert all(e.field.startswith("spec") for e in exc.errors)
        return
    except (TypeError, ValueError, AttributeError) as exc:  # pragma: no cover - the failure we look for
        raise AssertionError(f"{spec!r} crashed the spec parser: {exc!r}") from exc
    ref = ClusterRef("c", "ns", "uid")
    # The model is the only validator: an accepted spec builds, and a whole reconcile round decides.
    json.dumps(scheduler_pod(ref, cluster))
    json.dumps(worker_pod(ref, cluster, 0))
    decision = decide(ref, cluster, Observation(), {}, 1, 1_800_000_000.0, spec_changed=True)
    assert decision.status["phase"] == "Starting"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_corrupt_status_file_never_loses_the_launchers_keys(tmp_path_factory, garbage: bytes) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("sf") / "status.json"
    launcher = {"workdir": "/w", "pid": 7, "parameters": {"cores": 1}, "status": "starting"}
    path.write_text(json.dumps(launcher))
    status_file = StatusFile(path)
    status_file.read()
    path.write_bytes(garbage)  # another writer tramples the file
    status_file.write_status(ClusterStatus(Phase.FAILED, message="x"))
    after = json.loads(path.read_text())
    if isinstance(after, dict) and "pid" in after:
        assert after["pid"] == 7 and after["status"] == "failed"


def _spellings(seconds: int) -> st.SearchStrategy[str | int]:
    """Every way the status file may write ``seconds`` of walltime."""
    hours, rest = divmod(seconds, 3600)
    clock = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    days = f"{hours // 24}-{hours % 24:02d}:{rest // 60:02d}:{rest % 60:02d}"
    options: list[str | int] = [clock, days, f"{seconds}s", str(seconds), seconds]
    if seconds % 60 == 0:
        options.append(f"{seconds // 60}m")
    if seconds % 3600 == 0:
        options.append(f"{seconds // 3600}h")
    return st.sampled_from(options)


def _batch_seconds(text: str, system: str) -> int:
    """How the batch system itself reads its walltime directive (an independent oracle)."""
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if system == "lsf":
        parts.append(0)  # bsub -W is [hours:]minutes
    hours, minutes, seconds = parts
    return int(days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 30 * 86400).flatmap(lambda s: st.tuples(st.just(s), _spellings(s))))
def test_every_walltime_spelling_means_the_same_everywhere(case: tuple[int, str | int]) -> None:
    from seamless_dask_runtime.launcher.jobqueue.walltime import WALLTIME_FORMATS, batch_walltime
    from seamless_dask_runtime.model.sizing import lifetime

    seconds, spelling = case
    if seconds <= 300:  # walltime - 4 min stagger - 1 min grace leaves no lifetime: the model refuses it
        with pytest.raises(ParameterError, match=r"parameters\.walltime"):
            from_status_parameters({"cores": 1, "memory": "1GB", "walltime": spelling, "maximum_jobs": 2})
        return
    params = from_status_parameters({"cores": 1, "memory": "1GB", "walltime": spelling, "maximum_jobs": 2})
    for system in WALLTIME_FORMATS:
        granted = _batch_seconds(batch_walltime(params.walltime, system) or "", system)
        assert granted == (-(-seconds // 60) * 60 if system == "lsf" else seconds), (spelling, system)
    if seconds > 300:  # walltime - 4 min stagger - 1 min grace
        assert parse_duration(lifetime(params) or "").total_seconds() == seconds - 300


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(string.printable, max_size=10), st.integers(-10**12, 10**40),
                 st.floats(allow_nan=True, allow_infinity=True), st.booleans()))
def test_any_walltime_translates_or_names_the_field(walltime: object) -> None:
    try:
        params = from_status_parameters({"cores": 1, "memory": "1GB", "walltime": walltime})
    except ParameterError as exc:
        assert [e.field for e in exc.errors] == ["parameters.walltime"]
        return
    for system in BATCH_SYSTEMS:
        if system != "oar":
            assert "dask worker" in render_job_script(params, system)


LOCK_FAULTS = [errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EMFILE,
               errno.ENOLCK]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["open", "flock", "ftruncate", "write"]), st.sampled_from(LOCK_FAULTS))
def test_lock_faults_are_one_clear_error_and_the_failure_still_reaches_the_file(
    tmp_path_factory, operation: str, fault: int,  # type: ignore[no-untyped-def]
) -> None:
    path = tmp_path_factory.mktemp("lock") / "status.json"
    path.write_text(json.dumps({"pid": 7, "status": "starting", "parameters": {}}))
    status_file = StatusFile(path)
    status_file.read()
    target = fcntl if operation == "flock" else os

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(fault, os.strerror(fault))

    with mock.patch.object(target, operation, broken):
        try:
            status_file.acquire()
        except StatusFileError as exc:
            assert str(status_file.lock_path) in str(exc) and os.strerror(fault) in str(exc)
        else:  # pragma: no cover - every path through acquire uses the broken call
            raise AssertionError(f"acquire succeeded although os.{operation} failed")
    with mock.patch.object(tempfile, "mkstemp", broken):  # the same fault hits the status file's directory
        status_file.write_failure(ClusterStatus(Phase.FAILED, message="lock"))
    assert json.loads(path.read_text()) == {"pid": 7, "status": "failed", "parameters": {}, "error": "lock"}
    status_file.release()


def _valid_service_name(name: str) -> bool:
    """Kubernetes' rule for a Service name (a DNS-1035 label), spelled out independently of identity.py."""
    allowed = set(string.ascii_lowercase + string.digits + "-")
    return 0 < len(name) <= 63 and set(name) <= allowed and name[0] in string.ascii_lowercase \
        and name[-1] != "-"


def _valid_object_name(name: str) -> bool:
    """A pod's or Secret's name (a DNS-1123 subdomain)."""
    labels = name.split(".")
    allowed = set(string.ascii_lowercase + string.digits + "-")
    return len(name) <= 253 and all(label and set(label) <= allowed and label[0] != "-" and label[-1] != "-"
                                    for label in labels)


NAMES = (st.text(string.ascii_lowercase + string.digits + "-.", min_size=1, max_size=70)
         | st.integers(1, 70).map(lambda n: "a" * n)
         | st.sampled_from(["dotted.name", "Upper", "9lives", "ends-", "a-b", "x" * 53, "x" * 54]))


@settings(max_examples=300, deadline=None)
@given(NAMES, st.integers(0, 10**6))
def test_any_name_makes_valid_children_or_fails_naming_metadata_name(name: str, index: int) -> None:
    from seamless_dask_runtime.model import identity

    ref = ClusterRef(name, "ns", "uid")
    spec = {"workers": {"replicas": 1}, "tls": {"enabled": True}}
    try:
        named: Any = parse_spec(spec, name=name)
    except ParameterError as exc:
        named = exc
    decision = decide(ref, named, Observation(), {}, 1, 1_800_000_000.0, spec_changed=True)
    cluster = parse_spec(spec)
    if decision.status["phase"] == "Failed":
        assert decision.status["message"].startswith("metadata.name: ") and not decision.of(ApplyChild)
        # Refused only when the API server refuses the name itself or a child named after it.
        assert not (_valid_object_name(name) and _valid_service_name(identity.scheduler_name(name))), name
        return
    assert decision.status["phase"] == "Starting"
    assert _valid_service_name(scheduler_pod(ref, cluster)["metadata"]["name"])
    assert _valid_object_name(worker_pod(ref, cluster, index)["metadata"]["name"])
    assert _valid_object_name(identity.tls_secret_name(name))
    assert len(name) <= 63  # label values (dask.org/cluster-name) hold the name
