"""The cluster model: seed 002 defaults, translations and one clear error per bad field."""

from __future__ import annotations

import pytest

from seamless_dask_runtime.model import sizing
from seamless_dask_runtime.model.parameters import (
    PARAMETER_TABLE,
    ParameterError,
    from_crd_spec,
    from_status_parameters,
    to_crd_spec,
    to_status_parameters,
)


def test_seed_defaults() -> None:
    p = from_status_parameters({"cores": 2})
    assert p.transformation_throttle == 3
    assert p.unknown_task_duration == "1m"
    assert p.target_duration == "10m"
    assert p.tmpdir == "/tmp"
    assert p.maximum_jobs == 1
    assert p.interactive is False
    assert p.pure_dask is False


def test_cores_times_throttle() -> None:
    p = from_status_parameters({"cores": 4, "transformation_throttle": 5})
    assert sizing.job_cores(p) == 20
    assert sizing.worker_threads(p) == 20


def test_pure_dask_keeps_cores_and_two_threads() -> None:
    p = from_status_parameters({"cores": 24, "pure_dask": True})
    assert sizing.job_cores(p) == 24
    assert sizing.worker_threads(p) == 2


@pytest.mark.parametrize(
    ("walltime", "maximum_jobs", "expected"),
    [("01:00:00", 10, "55m"), ("02:00:00", 3, "115m"), ("01:00:00", 1, None)],
)
def test_lifetime_is_walltime_minus_stagger_minus_grace(walltime: str, maximum_jobs: int, expected: str | None) -> None:
    p = from_status_parameters({"cores": 1, "walltime": walltime, "maximum_jobs": maximum_jobs})
    assert sizing.lifetime(p) == expected


def test_lifetime_too_short_walltime_is_refused_by_the_model() -> None:
    """Found when the parameters are read, naming the field, never later by a translation."""
    with pytest.raises(ParameterError, match=r"parameters\.walltime: '00:04:00' leaves no worker lifetime"):
        from_status_parameters({"cores": 1, "walltime": "00:04:00", "maximum_jobs": 3})
    assert from_status_parameters({"cores": 1, "walltime": "00:04:00", "maximum_jobs": 1}).walltime == "00:04:00"
    assert sizing.lifetime(from_status_parameters({"walltime": "00:04:00", "lifetime": "2m", "maximum_jobs": 3})) \
        == "2m"


def test_exclusive_adds_s_resource_and_scales_target_duration() -> None:
    p = from_status_parameters({"exclusive": True, "dask-resources": {"GPU": 1}})
    assert sizing.worker_resources(p) == {"GPU": 1.0, "S": 1.0}
    plain = from_status_parameters({"cores": 4, "dask-resources": {"S": 2}})
    assert sizing.adaptive_target_duration(plain) == 1200.0


def test_interactive_keeps_one_worker() -> None:
    assert sizing.minimum_workers(from_status_parameters({"interactive": True})) == 1
    assert sizing.minimum_workers(from_status_parameters({})) == 0


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"cores": -1}, "parameters.cores"),
        ({"cores": True}, "parameters.cores"),
        ({"walltime": "tomorrow"}, "parameters.walltime"),
        ({"walltime": "01:75:00"}, "parameters.walltime"),
        ({"bogus": 1}, "parameters.bogus"),
        ({"cluster": "no-separator"}, "parameters.cluster"),
        ({"memory": "lots"}, "parameters.memory"),
        ({"internal-port-range": "9000:8000"}, "parameters.internal-port-range"),
        ({"dask-resources": {"S": -1}}, "parameters.dask-resources"),
        ({"interactive": "perhaps"}, "parameters.interactive"),
        ({"maximum_jobs": 0}, "parameters.maximum_jobs"),
        ({"tmpdir": "relative/dir"}, "parameters.tmpdir"),
    ],
)
def test_bad_field_is_named(raw: dict, field: str) -> None:
    with pytest.raises(ParameterError) as info:
        from_status_parameters(raw)
    assert [e.field for e in info.value.errors] == [field]
    assert field in str(info.value)


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(ParameterError) as info:
        from_status_parameters({"cores": 0, "walltime": "x", "nope": 1})
    assert {e.field for e in info.value.errors} == {"parameters.cores", "parameters.walltime", "parameters.nope"}


def test_crd_spelling_names_crd_fields() -> None:
    with pytest.raises(ParameterError) as info:
        from_crd_spec({"transformationThrottle": 0})
    assert info.value.errors[0].field == "spec.transformationThrottle"


def test_status_and_crd_spellings_round_trip() -> None:
    raw = {
        "cores": 8, "memory": "16GB", "walltime": "02:00:00", "tmpdir": "/scratch", "partition": "gpu",
        "project": "abc", "job_extra_directives": ["--gres=gpu:1"], "unknown-task-duration": "2m",
        "target-duration": "5m", "internal-port-range": [60000, 60100], "transformation_throttle": 2,
        "dask-resources": {"GPU": 1.0}, "interactive": True, "maximum_jobs": 4,
        "extra_dask_config": {"distributed.comm.timeouts.connect": "60s"}, "timeout": 600.0, "pure_dask": False,
    }
    params = from_status_parameters(raw)
    crd = to_crd_spec(params)
    assert crd["workers.maximum"] == 4 and crd["transformationThrottle"] == 2
    assert from_crd_spec(crd) == params
    assert from_status_parameters(to_status_parameters(params)) == params


def test_mapping_table_has_unique_spellings() -> None:
    for column in ("attr", "status_key", "crd_key"):
        values = [getattr(p, column) for p in PARAMETER_TABLE]
        assert len(values) == len(set(values)), column


# -- text that would become lines, and sizes without bound (issue 21, items 7 and 8) ------------------------------

# Every free-text field that reaches a job script, a command line or an environment variable.
ONE_LINE_FIELDS = ("cluster", "walltime", "memory", "tmpdir", "partition", "project", "unknown-task-duration",
                   "target-duration", "lifetime", "lifetime-stagger", "resource_spec", "memory_per_core_property_name",
                   "image")
VALID_TEXT = {"cluster": "dask_jobqueue::SLURMCluster", "walltime": "01:00:00", "memory": "4GB", "tmpdir": "/scratch",
              "lifetime": "50m", "unknown-task-duration": "1m", "target-duration": "10m", "lifetime-stagger": "4m"}
CONTROLS = ["\n", "\r", "\0", "\t", "\x1b", "\x7f", "\x85", "\u2028"]


@pytest.mark.parametrize("control", CONTROLS, ids=repr)
@pytest.mark.parametrize("key", ONE_LINE_FIELDS)
def test_control_characters_are_refused_naming_the_field(key: str, control: str) -> None:
    value = VALID_TEXT.get(key, "all") + control + "#SBATCH --qos=top"
    from_status_parameters({key: VALID_TEXT.get(key, "all")})  # the same without the control character is fine
    with pytest.raises(ParameterError) as info:
        from_status_parameters({key: value})
    [error] = info.value.errors
    assert error.field == f"parameters.{key}"
    assert f"(U+{ord(control):04X}) at position {len(VALID_TEXT.get(key, 'all'))}" in error.message


def test_control_characters_name_the_crd_field_and_the_entry() -> None:
    with pytest.raises(ParameterError) as info:
        from_crd_spec({"partition": "all\nx", "jobExtraDirectives": ["--exclusive", "--qos=a\n#SBATCH -A b"],
                       "extraDaskConfig": {"distributed.worker.x\ny": 1}, "daskResources": {"GPU\r": 1}})
    messages = {e.field: e.message for e in info.value.errors}
    assert set(messages) == {"spec.partition", "spec.jobExtraDirectives", "spec.extraDaskConfig", "spec.daskResources"}
    assert messages["spec.jobExtraDirectives"].startswith("entry 1 contains a newline")
    assert messages["spec.extraDaskConfig"].startswith("key 'distributed.worker.x\\ny': contains a newline")


def test_prologue_is_shell_text_tab_and_newline_allowed_nothing_else() -> None:
    prologue = ["module load python\n\texport A=1"]
    assert from_status_parameters({"job_script_prologue": prologue}).job_script_prologue == tuple(prologue)
    for control in ("\r", "\0", "\x1b", "\u2028"):
        with pytest.raises(ParameterError, match=r"parameters.job_script_prologue: entry 0 contains"):
            from_status_parameters({"job_script_prologue": [f"echo a{control}b"]})


def test_extra_dask_config_values_are_one_line_at_any_depth() -> None:
    deep: object = "a\nb"
    for _ in range(900):  # about as deep as a status file's JSON can nest
        deep = [deep]
    with pytest.raises(ParameterError, match=r"parameters\.extra_dask_config: 'distributed\.worker\.x': contains"):
        from_status_parameters({"extra_dask_config": {"distributed.worker.x": deep}})


def test_maximum_jobs_is_bounded() -> None:
    from seamless_dask_runtime.model.identity import MAX_WORKERS

    assert from_status_parameters({"maximum_jobs": MAX_WORKERS}).maximum_jobs == MAX_WORKERS
    for spelling, parse, field in (("status", from_status_parameters, "parameters.maximum_jobs"),
                                   ("crd", from_crd_spec, "spec.workers.maximum")):
        key = "maximum_jobs" if spelling == "status" else "workers.maximum"
        with pytest.raises(ParameterError) as info:
            parse({key: 10**6})
        [error] = info.value.errors
        assert error.field == field and f"must be at most {MAX_WORKERS}" in error.message
