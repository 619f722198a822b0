"""``kubectl sdc`` on real pods: each command as a user types it, found by the real kubectl on PATH.

One small cluster serves every command: status (conditions, Events, the
workers' memory from the scheduler), dashboard and client (through the
plugin's port-forward, and the in-cluster address from a pod), logs
(scheduler, workers, both, and -f), and scale.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .kube import TEST_NAMESPACE, Images, Kube, example, small_cluster, wait_until

NAME = "plugin"
VENV_BIN = Path(sys.executable).parent


def sdc_env(kube: Kube) -> dict[str, str]:
    """The user's environment, with this package's ``kubectl-sdc`` on PATH (where pip puts it)."""
    return {**kube.env, "PATH": f"{VENV_BIN}{os.pathsep}{kube.env.get('PATH', os.environ['PATH'])}"}


def sdc(kube: Kube, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([kube.kubectl_path, "sdc", *args], capture_output=True, text=True, env=sdc_env(kube),
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, f"kubectl sdc {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc


class Running:
    """A ``kubectl sdc`` command left running (port-forwards, logs -f); its output lines as they come."""

    def __init__(self, kube: Kube, *args: str):
        self.proc = subprocess.Popen([kube.kubectl_path, "sdc", *args], env=sdc_env(kube), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.cursor = 0
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stdout or []],
                         daemon=True).start()

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match[str]:
        """The next line (after the last one matched) that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self.cursor < len(self.seen):
                match = re.search(pattern, self.seen[self.cursor])
                self.cursor += 1
                if match:
                    return match
            try:
                self.seen.append(self.lines.get(timeout=0.5))
            except queue.Empty:
                assert self.proc.poll() is None, f"exited {self.proc.returncode}: {''.join(self.seen)}"
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{''.join(self.seen)}")

    def text(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)

    def stop(self) -> int:
        """Ctrl-C, as a user stops it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(30)


@contextlib.contextmanager
def running(kube: Kube, *args: str) -> Iterator[Running]:
    command = Running(kube, *args)
    try:
        yield command
    finally:
        if command.proc.poll() is None:
            command.proc.kill()
            command.proc.wait(10)


@pytest.fixture(scope="module")
def cluster(operator_release: str, kube: Kube, images: Images) -> Iterator[str]:
    kube.apply(small_cluster(example("minimal")[0], images.runtime, NAME))
    try:
        kube.wait_running(NAME, 1)
        yield NAME
    finally:
        kube.delete_cluster(NAME)


def test_client_port_forwards_and_its_snippet_computes(cluster: str, kube: Kube) -> None:
    with running(kube, "client", cluster, "-n", TEST_NAMESPACE) as command:
        address = command.wait_for(r"address\s+(tcp://127\.0\.0\.1:\d+)").group(1)
        dashboard = command.wait_for(r"dashboard\s+(http://127\.0\.0\.1:\d+/status)").group(1)
        command.wait_for(r'^client = Client\("tcp://127\.0\.0\.1:\d+"\)')
        snippet = command.text()[command.text().index("from distributed import Client"):]
        namespace: dict = {}
        exec(compile(snippet, "snippet", "exec"), namespace)  # the printed snippet, as pasted
        client = namespace["client"]
        try:
            assert client.scheduler.address == address
            assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
            with urllib.request.urlopen(dashboard, timeout=30) as response:
                assert response.status == 200
            # A result of 64 MiB held in worker memory shows as the worker's managed memory.
            held = client.submit(bytes, 64 * 2**20, pure=False)
            held.result(timeout=60)

            def managed_mib() -> float:
                status = sdc(kube, "status", cluster, "-n", TEST_NAMESPACE).stdout
                line = next(line for line in status.splitlines() if line.startswith(f"  {cluster}-worker-"))
                managed = re.search(r"/ [\d.]+ (?:MiB|GiB)\s+([\d.]+) MiB", line)
                return float(managed.group(1)) if managed else 0.0

            wait_until(lambda: managed_mib() >= 64, "64 MiB managed on the worker", timeout=60, interval=2)
            del held
        finally:
            client.close()
        assert command.stop() == 0
    assert "port-forward stopped" not in command.text()


def test_status_shows_conditions_events_and_workers_memory(cluster: str, kube: Kube) -> None:
    out = sdc(kube, "status", cluster, "-n", TEST_NAMESPACE, "--events", "50").stdout
    lines = out.splitlines()
    assert lines[0].startswith(f"SeamlessDaskCluster {TEST_NAMESPACE}/{cluster}: Running (SchedulerReady)")
    assert re.search(r"SchedulerReady\s+True\s+HealthCheckPassing", out), out
    assert re.search(r"SpecValid\s+True\s+Valid", out), out
    assert "Workers (from the scheduler's /json/identity.json):" in out, out
    worker = next(line for line in lines if line.startswith(f"  {cluster}-worker-0"))
    # pod phase and readiness from Kubernetes, threads and memory (RSS / limit 1 GiB) from the scheduler
    assert re.search(r"Running\s+True\s+\d+\s+3\s+[\d.]+ MiB / [\d.]+ (MiB|GiB)", worker), worker
    events = out.split("Recent events:")[1]
    assert re.search(rf"Scheduled\s+pod/{cluster}-(scheduler|worker-0)", events), events
    # No such cluster: kubectl's own words, exit 1.
    missing = sdc(kube, "status", "nosuchcluster", "-n", TEST_NAMESPACE, check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr, missing.stderr


def test_dashboard_port_forwards_until_ctrl_c(cluster: str, kube: Kube) -> None:
    with running(kube, "dashboard", cluster, "-n", TEST_NAMESPACE) as command:
        url = command.wait_for(rf"Dask dashboard of {TEST_NAMESPACE}/{cluster}: (http://127\.0\.0\.1:\d+/status)") \
            .group(1)
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200 and b"Dask" in response.read()
        assert command.stop() == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)  # the port-forward went with it


def test_client_in_cluster_address_works_from_a_pod(cluster: str, kube: Kube, images: Images) -> None:
    out = sdc(kube, "client", cluster, "-n", TEST_NAMESPACE, "--in-cluster").stdout
    assert f"tcp://{cluster}-scheduler.{TEST_NAMESPACE}.svc:8786" in out.splitlines()[0]
    snippet = out[out.index("from distributed import Client"):]
    log = kube.run_pod("plugin-client", images.runtime,
                       snippet + "print('result', client.submit(sum, [1, 2]).result(timeout=60))\n")
    assert "result 3" in log


def test_logs_of_the_scheduler_the_workers_and_both(cluster: str, kube: Kube, tmp_path: Path) -> None:
    scheduler = sdc(kube, "logs", cluster, "-n", TEST_NAMESPACE, "--scheduler").stdout
    workers = sdc(kube, "logs", cluster, "-n", TEST_NAMESPACE, "--workers").stdout
    both = sdc(kube, "logs", cluster, "-n", TEST_NAMESPACE).stdout
    assert "Scheduler at" in scheduler
    assert all(line.startswith(f"[pod/{cluster}-scheduler/") for line in scheduler.splitlines() if line), scheduler
    assert all(line.startswith(f"[pod/{cluster}-worker-") for line in workers.splitlines() if line), workers
    assert "Registered to" in workers
    assert f"[pod/{cluster}-scheduler/" in both and f"[pod/{cluster}-worker-0/" in both
    # -f streams what happens next: a client connecting shows in the scheduler's log.
    from distributed import Client

    with running(kube, "logs", cluster, "-n", TEST_NAMESPACE, "--scheduler", "-f", "--tail", "1") as follow, \
            kube.port_forward(f"svc/{cluster}-scheduler", 8786, tmp_path / "pf.log") as port:
        time.sleep(2)  # kubectl logs -f is attached
        with Client(f"tcp://127.0.0.1:{port}", timeout=60) as client:
            follow.wait_for(rf"\[pod/{cluster}-scheduler/.*Receive client connection: {client.id}")
        assert follow.stop() == 0


def test_versions_route_on_the_pod_reports_no_skew(cluster: str, kube: Kube) -> None:
    report = json.loads(kube.scheduler_exec(cluster, (
        "import urllib.request\n"
        "print(urllib.request.urlopen('http://localhost:8787/api/v1/seamless/versions').read().decode())"
    )).strip().splitlines()[-1])
    import distributed

    assert report["scheduler"]["distributed"] == distributed.__version__  # the image is built with ours
    assert [w["name"] for w in report["workers"].values()] == [f"{cluster}-worker-0"]
    assert report["skew"] is False and report["message"] == ""


def test_scale_sets_replicas_and_refuses_replicas_of_an_adaptive_cluster(cluster: str, kube: Kube) -> None:
    out = sdc(kube, "scale", cluster, "-n", TEST_NAMESPACE, "--replicas", "2").stdout
    assert "scaled: 2 workers (maximum 4)" in out
    kube.wait_running(cluster, 2)
    wait_until(lambda: len(kube.connected_workers(cluster)) == 2, "two workers connected", timeout=120)
    sdc(kube, "scale", cluster, "-n", TEST_NAMESPACE, "--adaptive", "--minimum", "1", "--maximum", "2")
    refused = sdc(kube, "scale", cluster, "-n", TEST_NAMESPACE, "--replicas", "3", check=False)
    assert refused.returncode == 2 and "is adaptive between 1 and 2 workers" in refused.stderr
    back = sdc(kube, "scale", cluster, "-n", TEST_NAMESPACE, "--no-adaptive", "--replicas", "1").stdout
    assert "scaled: 1 workers" in back
    kube.wait_running(cluster, 1)
    # An invalid scale is the CRD's refusal, in kubectl's words.
    too_many = sdc(kube, "scale", cluster, "-n", TEST_NAMESPACE, "--replicas", "9", check=False)
    assert too_many.returncode == 1 and "workers.replicas must not exceed workers.maximum" in too_many.stderr
