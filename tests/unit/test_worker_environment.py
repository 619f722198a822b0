"""One worker environment for job scripts and pods."""

from __future__ import annotations

from seamless_dask_runtime.activity import IdleTracker
from seamless_dask_runtime.launcher.jobqueue.arguments import render_job_script
from seamless_dask_runtime.model.commands import scheduler_command, worker_command
from seamless_dask_runtime.model.parameters import from_status_parameters
from seamless_dask_runtime.model.worker_environment import export_lines, worker_environment, worker_process_environment


def test_seamless_environment() -> None:
    env = worker_environment(from_status_parameters({"cores": 2, "transformation_throttle": 4}), cpu_count="8")
    assert env["SEAMLESS_WORKER_TRANSFORMATION_THROTTLE"] == "4"
    assert env["SEAMLESS_DASK_QUEUE_EXCLUSIVE"] == "0"
    assert env["DASK_DISTRIBUTED__WORKER__DAEMON"] == "False"
    assert env["PYTHON_CPU_COUNT"] == "8"


def test_pure_dask_environment_has_no_seamless_variable() -> None:
    env = worker_environment(from_status_parameters({"pure_dask": True}))
    assert not [name for name in env if name.startswith("SEAMLESS_")]


def test_extra_dask_config_reaches_workers_but_scheduler_keys_only_if_distributed() -> None:
    env = worker_environment(from_status_parameters({"extra_dask_config": {
        "distributed.worker.memory.target": 0.7, "array.chunk-size": "64MiB"}}))
    assert env["DASK_DISTRIBUTED__WORKER__MEMORY__TARGET"] == "0.7"
    assert "DASK_ARRAY__CHUNK_SIZE" not in env


def test_export_quoting() -> None:
    lines = export_lines({"A": "$SLURM_JOB_CPUS_PER_NODE", "B": "two words", "C": '{"S": 1.0}'})
    assert lines == ["export A=$SLURM_JOB_CPUS_PER_NODE", "export B='two words'", "export C='{\"S\": 1.0}'"]


def test_commands() -> None:
    params = from_status_parameters({"cores": 2})
    assert worker_command(params, "tcp://s:8786", name="w1") == [
        "dask", "worker", "--nthreads", "6", "--name", "w1", "tcp://s:8786"]
    assert "--preload" in scheduler_command(params)
    assert "--preload" not in scheduler_command(from_status_parameters({"pure_dask": True}))


def test_idle_tracker() -> None:
    tracker = IdleTracker(timeout=10)
    idle = {"clients": 0, "tasks": 0, "workers": 1}
    assert not tracker.observe(idle, 0)
    assert not tracker.observe(idle, 9)
    assert not tracker.observe({"clients": 1, "tasks": 0, "workers": 1}, 9.5)
    assert not tracker.observe(idle, 10)
    assert not tracker.observe(None, 15)  # scheduler did not answer: not idle
    assert not tracker.observe(idle, 16)
    assert tracker.observe(idle, 26)
    assert not IdleTracker(timeout=None).observe(idle, 1e9)


def test_local_workers_count_the_cpus_the_machine_has() -> None:
    from seamless_dask_runtime.model.sizing import local_cpu_count

    params = from_status_parameters({"cores": 2, "transformation_throttle": 3})  # a job would ask for 6
    assert local_cpu_count(params, available=2) == 2
    assert local_cpu_count(params, available=16) == 6
    assert local_cpu_count(from_status_parameters({"cores": 1, "exclusive": True}), available=8) == 1


def test_worker_processes_of_seamless_clusters_hide_the_scheduler_from_nested_seamless_run() -> None:
    params = from_status_parameters({"cores": 1, "memory": "2GB"})
    env = worker_process_environment(params)
    # Issue 13: an inner seamless-run that finds the scheduler waits for the S slot its parent holds.
    assert env.pop("SEAMLESS_DASK_SCHEDULER") == ""
    assert env == worker_environment(params)
    # Job scripts keep seed 002's lines: only the plugin, which runs before seamless-dask's, sets it.
    assert "SEAMLESS_DASK_SCHEDULER" not in render_job_script(params, "slurm")


def test_pure_dask_worker_processes_get_no_seamless_variable() -> None:
    env = worker_process_environment(from_status_parameters({"pure_dask": True}))
    assert not [name for name in env if name.startswith("SEAMLESS_")]
