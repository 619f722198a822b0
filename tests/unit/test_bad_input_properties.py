"""Any input either translates all the way or fails with errors that name their fields; nothing else escapes."""

from __future__ import annotations

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seamless_dask_operator.builders import ClusterRef, scheduler_deployment, worker_pod
from seamless_dask_operator.resource import parse_spec

from seamless_dask_runtime.jobqueue import BATCH_SYSTEMS, render_job_script
from seamless_dask_runtime.parameters import PARAMETER_TABLE, ParameterError, from_status_parameters
from seamless_dask_runtime.status import ClusterStatus, Phase, StatusFile

JSON_SCALARS = st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=False) | \
    st.text(string.printable, max_size=12)
JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3) |
                    st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
PLAUSIBLE = {
    "cores": st.integers(-2, 64), "memory": st.sampled_from(["1GB", "54000MB", "4GiB", "lots", "0", "-1GB"]),
    "walltime": st.sampled_from(["01:00:00", "00:04:00", "1-00:00:00", "55m", "soon", "99:99:99"]),
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
        except ParameterError as exc:  # e.g. memory is required for batch systems
            assert all(e.field.startswith("parameters.") for e in exc.errors)
        except ValueError as exc:  # computed values (lifetime) name the field they come from
            assert "parameters." in str(exc)
        else:
            assert "dask worker" in script


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["cores", "memory", "workers", "pureDask", "unknownTaskDuration",
                                        "volumes", "timeout", "image", "bogus"]), JSON, max_size=5))
def test_resource_specs_build_or_name_the_field(spec: dict) -> None:
    try:
        cluster = parse_spec(spec)
    except ParameterError as exc:
        assert all(e.field.startswith("spec") for e in exc.errors)
        return
    except (TypeError, ValueError, AttributeError) as exc:  # pragma: no cover - the failure we look for
        raise AssertionError(f"{spec!r} crashed the spec parser: {exc!r}") from exc
    ref = ClusterRef("c", "ns", "uid")
    try:
        json.dumps(scheduler_deployment(ref, cluster))
        json.dumps(worker_pod(ref, cluster, 0))
    except ValueError as exc:
        assert "parameters." in str(exc) or "spec." in str(exc), exc


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
