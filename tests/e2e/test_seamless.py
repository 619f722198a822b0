"""Real Seamless on worker pods: a Seamless user on the host runs transformations in the Seamless pool
of a SeamlessDaskCluster that our operator made from the runtime image built with ``SEAMLESS=true``.

The user's path, unchanged but for the site's two settings: ``seamless.config.init()`` (seamless-config)
has remote-http-launcher start the hashserver, the database and OUR ``seamless-dask-wrapper`` on this
host. seamless-config only knows local/slurm/oar clusters, so the site sets, in the daskserver's
environment, ``SEAMLESS_DASK_CLUSTER`` (our Kubernetes backend) and ``SEAMLESS_DASK_PARAMETERS``
(namespace, image). The wrapper creates the SeamlessDaskCluster and reaches its scheduler by
``kubectl port-forward``.

The Seamless workers in the pods fetch and store buffers and results in the hashserver and the
database, which run on the host as seamless-config starts them. They listen on the host's address
on the pods' network (the node's bridge here, the kind network's gateway on kind), which the client
hands to the workers with its remote clients: what a user with services on a laptop or a login node
does. (Running them as pods instead would need seamless-config to launch them there, which it cannot,
and the client would need a second route to them.)

The daskserver's ``--timeout`` (30 s here) becomes the resource's ``spec.timeout``: once the last user
process left, the operator deletes the idle cluster (an ``IdleTimeout`` Event), although seamless-dask's
client inside each worker pod's Dask worker stays connected (it used to keep the cluster for ever).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.seamless_stack import (
    CLUSTER,
    CONDA_ENV,
    PROJECT,
    SeamlessHome,
    make_home,
    missing_stack,
    service_log,
    service_pids,
    status_file,
    stop_services,
    wait_gone,
    wrapper_script,
)

from .kube import TEST_NAMESPACE, Images, Kube, wait_until
from .platform import REPO, KindPlatform, KnodePlatform, Platform, run, tool

VENV_BIN = Path(sys.executable).parent
SEAMLESS_IMAGE = "seamless-dask-runtime:e2e-seamless"
K8S_CLUSTER = "seamless_dask_runtime.kubernetes::SeamlessDaskCluster"
PARALLEL = 20
TIMEOUT = 30  # the daskserver's --timeout: the cluster's spec.timeout

if missing_stack(VENV_BIN):
    pytest.skip(f"the real Seamless stack is not installed on the host (missing {', '.join(missing_stack(VENV_BIN))})"
                "; pip install -e '.[test]'", allow_module_level=True)

pytestmark = pytest.mark.slow


def host_address_for_pods(platform: Platform) -> str | None:
    """This host's address on the pods' network: where pods reach services the user runs here."""
    if os.environ.get("SDO_SEAMLESS_HOST"):
        return os.environ["SDO_SEAMLESS_HOST"]
    if isinstance(platform, KnodePlatform) and platform.node_dir is not None:
        marker = platform.node_dir / "bridge"
        bridge = marker.read_text().strip() if marker.is_file() else "knode0"
        out = run("ip", "-4", "-o", "addr", "show", bridge, check=False).stdout.split()
        return out[out.index("inet") + 1].split("/")[0] if "inet" in out else None
    if isinstance(platform, KindPlatform):
        out = run(tool("docker") or "docker", "network", "inspect", "kind", "--format",
                  "{{range .IPAM.Config}}{{.Gateway}} {{end}}", check=False).stdout.split()
        return next((address for address in out if "." in address), None)
    return None


@pytest.fixture(scope="module")
def seamless_image(platform: Platform, images: Images) -> str:
    """The runtime image with Seamless in it, built only when this module runs (layer caches keep it short)."""
    import distributed

    seconds = platform.build_image(REPO / "images" / "runtime" / "Dockerfile", SEAMLESS_IMAGE,
                                   {"DASK_VERSION": distributed.__version__, "SEAMLESS": "true"})
    size = platform.image_size(SEAMLESS_IMAGE)
    print(f"image {SEAMLESS_IMAGE}: built in {seconds:.1f} s, "
          f"{'size unknown' if size is None else f'{size / 1e6:.0f} MB'}", flush=True)
    return SEAMLESS_IMAGE


def run_driver(home: SeamlessHome, env: dict[str, str], *workloads: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "tests.support.seamless_driver", *workloads], cwd=home.project,
                          env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"driver printed no report (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-5000:]}"
    return json.loads(lines[-1])


def cluster_name(home: SeamlessHome) -> str:
    """The SeamlessDaskCluster of the daskserver: named after the status file the launcher gave the wrapper."""
    from seamless_dask_runtime.launcher.wrapper.backends.kubernetes import default_name

    status = next((home.launcher_state / "server").glob("daskserver-*.json"))
    return default_name(status.name)


def write_recipe(home: SeamlessHome, env: dict[str, str], kube: Kube, *args: str) -> dict[str, str]:
    """Run ``kubectl sdc recipe ARGS`` and write its two files where seamless-config reads them."""
    from seamless_dask_runtime.launcher.kubectl_plugin.recipe import CLUSTERS_FILE, PROJECT_FILE, recipe_sections

    plugin_env = {**env, "PATH": f"{VENV_BIN}{os.pathsep}{env['PATH']}"}
    text = run(kube.kubectl_path, "sdc", "recipe", *args, env=plugin_env).stdout
    sections = recipe_sections(text)
    (home.home / ".seamless" / "clusters.yaml").write_text(sections[CLUSTERS_FILE])
    (home.project / "seamless.yaml").write_text(sections[PROJECT_FILE])
    return sections


def recipe_environment(sections: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """``env`` after a shell ran the recipe's export lines."""
    from seamless_dask_runtime.launcher.kubectl_plugin.recipe import ENVIRONMENT

    out = run("bash", "-c", sections[ENVIRONMENT] + "env -0", env=env).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


@pytest.fixture(scope="module")
def session(operator_release: str, kube: Kube, platform: Platform, seamless_image: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    host = host_address_for_pods(platform)
    if host is None:
        pytest.skip(f"no address of this host that pods on {platform.name} can reach (set SDO_SEAMLESS_HOST)")
    # One worker pod of one core: what fits next to the rest of the suite on a 2-CPU node.
    root = tmp_path_factory.mktemp("seamless-k8s")
    home = make_home(root, VENV_BIN, cores=1, maximum_jobs=1, memory="1GB", interactive=True, services_host=host)
    env = {**home.environment(), "PYTHONPATH": str(REPO), "KUBECONFIG": kube.env["KUBECONFIG"],
           "DASKSERVER_TIMEOUT": str(TIMEOUT)}
    env["PATH"] = f"{Path(kube.kubectl_path).parent}{os.pathsep}{env['PATH']}"
    # The user's files and the daskserver's environment are the recipe `kubectl sdc recipe` prints, as is.
    recipe = write_recipe(home, env, kube, "-n", TEST_NAMESPACE, "--image", seamless_image, "--services-address", host,
                          "--data-dir", str(root), "--cluster-name", CLUSTER, "--project", PROJECT, "--conda",
                          CONDA_ENV, "--cores", "1", "--memory", "1GB", "--maximum-jobs", "1", "--interactive",
                          "--ports", "62000", "62999")
    env = recipe_environment(recipe, env)
    assert env["SEAMLESS_DASK_CLUSTER"] == K8S_CLUSTER
    name = None
    started = time.monotonic()
    try:
        first = run_driver(home, env, "simple", "parallel", "nested", "where", "seamless_run")
        first_seconds = time.monotonic() - started
        name = cluster_name(home)
        t0 = time.monotonic()
        rerun = run_driver(home, env, "rerun")  # a new process, well within the idle timeout
        left = time.monotonic()  # the last client left: from here on the cluster is idle
        pools = {pod["metadata"]["name"]: pool_in_pod(kube, pod["metadata"]["name"])
                 for pod in kube.pods(name, "worker")}
        print("pool processes per worker pod:", json.dumps(pools, indent=1), flush=True)
        resource = kube.get("sdc", name) or {}
        worker_logs = {pod: kube.kubectl("logs", "-n", TEST_NAMESPACE, pod).stdout for pod in pools}
        worker_images = sorted({c["image"] for pod in kube.pods(name, "worker") for c in pod["spec"]["containers"]})
        print(f"seamless on pods: first session {first_seconds:.1f} s (init {first['init_seconds']} s), "
              f"rerun {left - t0:.1f} s; workloads "
              + ", ".join(f"{k} {v['seconds']} s" for k, v in first["workloads"].items()), flush=True)
        yield {"home": home, "name": name, "first": first, "rerun": rerun, "pools": pools, "resource": resource,
               "worker_images": worker_images, "worker_logs": worker_logs, "left": left,
               "wrapper": service_pids(home).get("daskserver"), "script": wrapper_script(home)}
    finally:
        print(service_log(home, "daskserver")[-6000:])  # shown when a test failed
        stop_services(home)
        if name is not None:
            wait_until(lambda: kube.get("sdc", name) is None, "the wrapper deleting its cluster", timeout=90)


# Every Seamless pool process in a worker pod, and whether it started with the remote clients.
# PID 1 is `dask worker`: the nanny, whose multiprocessing child is the Dask worker (PID 1 itself
# with --no-nanny). The pool is what seamless-dask's worker plugin spawns under the Dask worker.
POOL_PROBE = r"""
import json, pathlib
procs = {}
for proc in pathlib.Path('/proc').glob('[0-9]*'):
    try:
        cmd = (proc / 'cmdline').read_bytes()
        env = (proc / 'environ').read_bytes().split(b'\0')
        ppid = int((proc / 'stat').read_text().rsplit(')', 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        continue
    procs[int(proc.name)] = (ppid, cmd, any(e.startswith(b'SEAMLESS_REMOTE_CLIENTS=') for e in env))
spawned = {pid for pid, (_, cmd, _) in procs.items() if cmd.startswith(b'/') and b'spawn_main' in cmd}
workers = {1} if b'--no-nanny' in procs[1][1] else {pid for pid in spawned if procs[pid][0] == 1}
print(json.dumps({'workers': sorted(workers),
                  'pool': {pid: procs[pid][2] for pid in spawned if procs[pid][0] in workers},
                  'processes': {pid: f"{ppid} " + cmd.replace(b'\0', b' ').decode()[:100]
                                for pid, (ppid, cmd, _) in procs.items()}}))
"""


def pool_in_pod(kube: Kube, pod: str) -> dict[str, Any]:
    out = kube.kubectl("exec", "-n", TEST_NAMESPACE, pod, "--", "python", "-c", POOL_PROBE).stdout
    return json.loads(out.strip().splitlines()[-1])


def workload(report: dict[str, Any], name: str) -> dict[str, Any]:
    result = report["workloads"][name]
    assert result["error"] is None, result
    return result


def test_the_launcher_starts_our_wrapper_which_makes_a_seamless_cluster(session: dict[str, Any]) -> None:
    script = session["script"]
    assert script is not None and "seamless_dask_runtime.launcher.wrapper.cli" in Path(script).read_text(), script
    assert session["resource"]["spec"]["image"] == SEAMLESS_IMAGE, session["resource"].get("spec")
    # The launcher's `--timeout` (seamless-config's, 600 s unless the user redefines the tool) is the idle
    # timeout the operator applies.
    assert session["resource"]["spec"].get("timeout") == TIMEOUT, session["resource"].get("spec")
    assert session["worker_images"] and all(i.endswith(SEAMLESS_IMAGE) for i in session["worker_images"]), \
        session["worker_images"]
    assert session["first"]["scheduler"].startswith("tcp://127.0.0.1:")  # the port-forward
    assert session["wrapper"] is not None


def test_simple_parallel_and_nested_transformations_in_worker_pods(session: dict[str, Any]) -> None:
    report = session["first"]
    assert workload(report, "simple")["result"] == 42
    assert workload(report, "parallel")["result"] == sum(i * i for i in range(PARALLEL))
    assert workload(report, "nested")["result"] == [0, 10, 20]
    assert workload(report, "parallel")["transitions"] > 0  # they ran on the cluster's scheduler
    assert workload(report, "where")["result"] in session["pools"], "the transformation ran outside the worker pods"


def test_every_pool_process_in_the_pods_has_the_remote_clients(session: dict[str, Any]) -> None:
    pools = session["pools"]
    assert pools, "no worker pod"
    for pod, probe in pools.items():
        assert probe["pool"], f"no Seamless pool process in {pod}: {probe['processes']}"
        assert all(probe["pool"].values()), f"pool processes without SEAMLESS_REMOTE_CLIENTS in {pod}: {probe}"


def test_seamless_run_inside_a_transformation_in_a_worker_pod(session: dict[str, Any]) -> None:
    # One Seamless worker per Dask worker (cores: 1): the inner seamless-run runs in the outer one's pod
    # (worker_process_environment leaves SEAMLESS_DASK_SCHEDULER empty), so it cannot wait for an S slot.
    result = workload(session["first"], "seamless_run")["result"]
    assert isinstance(result, str) and result.splitlines()[-1] == "nested-run-ok", result


def test_worker_pod_logs_tell_the_seamless_setup(session: dict[str, Any]) -> None:
    for pod, log in session["worker_logs"].items():
        for line in ("Seamless environment set in Dask worker",  # ours
                     "Set remote clients inside Dask worker",  # seamless-dask's plugin
                     "Spawned Seamless workers inside Dask worker"):
            assert line in log, f"{line!r} missing from the log of {pod}:\n{log[-3000:]}"


def test_seamless_asks_its_own_permission_manager_in_the_pods(session: dict[str, Any]) -> None:
    throttles = session["first"]["throttles"]
    assert throttles["seamless"] == [3], throttles  # throttle 3 x 1 Seamless worker per pod
    ours = throttles["ours"]
    assert ours["granted_total"] == ours["denied_total"] == ours["in_flight"] == 0, ours


def test_a_new_process_is_served_from_cache_without_dask_tasks(session: dict[str, Any]) -> None:
    rerun = workload(session["rerun"], "rerun")
    assert rerun["result"] == [42, sum(i * i for i in range(PARALLEL)), [0, 10, 20]]
    assert rerun["transitions"] == 0, f"the scheduler ran tasks for cached work: {rerun}"


def test_the_idle_cluster_is_deleted_once_the_last_client_left(session: dict[str, Any], kube: Kube) -> None:
    """Judged on clients from outside: seamless-dask's client inside the worker pod stays connected."""
    name, deadline = session["name"], session["left"] + TIMEOUT + 30
    while kube.get("sdc", name) is not None and time.monotonic() < deadline:
        time.sleep(1)
    gone_after = time.monotonic() - session["left"]
    assert kube.get("sdc", name) is None, (
        f"the cluster is still there {gone_after:.0f} s after the last client left (timeout {TIMEOUT} s): "
        f"{(kube.get('sdc', name) or {}).get('status')}")
    assert kube.events(name, "IdleTimeout"), "no IdleTimeout Event says why the cluster went"
    wrapper = session["wrapper"]
    assert wrapper is None or wait_gone(wrapper, time.monotonic() + 30), "the wrapper outlived its cluster"
    assert status_file(session["home"], "daskserver") is None, "the wrapper left its status file"
    print(f"cluster deleted {gone_after:.1f} s after the last client left (timeout {TIMEOUT} s)")
