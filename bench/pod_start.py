"""What a pod's spec costs before its container runs: create -> container running, spec variants side by side.

``pods.py`` shows our scheduler and worker containers running ~0.5 s later than the hand-made floor pods.
This bench takes the difference apart on the real node (``../shared/kube/node-up.sh``; the image loaded
there, nothing is pulled): the same container (``sleep``) in a bare pod, with an ``emptyDir`` volume (our
read-only root filesystem's writable tmpdir), with our pod and container security contexts (from
``builders.pods``, as the operator makes them), and with both. Variants alternate within each round; the
namespace is made and deleted here. Prints medians and every sample (seconds; not a timed test).

    KUBECONFIG=... .venv/bin/python bench/pod_start.py [--rounds 6] [--image seamless-dask-runtime:bench]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config, watch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))

from seamless_dask_operator.builders.pods import container_security_context, pod_security_context  # noqa: E402

NAMESPACE = "bench-pod-start"
REQUESTS = {"cpu": "50m", "memory": "128Mi"}


def bare(name: str, image: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
                     "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": image, "imagePullPolicy": "IfNotPresent",
                                     "args": ["sleep", "600"], "resources": {"requests": dict(REQUESTS)}}]}}


def with_empty_dir(pod: dict[str, Any]) -> dict[str, Any]:
    pod["spec"]["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp/work"}]
    return pod


def with_security(pod: dict[str, Any]) -> dict[str, Any]:
    pod["spec"]["securityContext"] = pod_security_context()
    pod["spec"]["containers"][0]["securityContext"] = container_security_context()
    return pod


VARIANTS: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "bare": bare,
    "emptyDir": lambda name, image: with_empty_dir(bare(name, image)),
    "security contexts": lambda name, image: with_security(bare(name, image)),
    "both (ours)": lambda name, image: with_security(with_empty_dir(bare(name, image))),
}


def create_to_running(api: k8s.CoreV1Api, body: dict[str, Any], timeout: float) -> float:
    name = body["metadata"]["name"]
    started = time.monotonic()
    api.create_namespaced_pod(NAMESPACE, body)
    stream = watch.Watch()
    try:
        for event in stream.stream(api.list_namespaced_pod, NAMESPACE, field_selector=f"metadata.name={name}",
                                   timeout_seconds=int(timeout)):
            statuses = event["object"].status.container_statuses or []
            if statuses and statuses[0].state.running:
                return time.monotonic() - started
    finally:
        stream.stop()
        api.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
    raise TimeoutError(f"{name}: not running within {timeout:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--image", default="seamless-dask-runtime:bench")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    config.load_kube_config(os.environ.get("KUBECONFIG"))
    api = k8s.CoreV1Api()
    api.create_namespace({"metadata": {"name": NAMESPACE}})
    try:
        for _ in range(50):  # the namespace's default ServiceAccount, which pod admission waits for
            if api.list_namespaced_service_account(NAMESPACE).items:
                break
            time.sleep(0.2)
        samples: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for round_ in range(args.rounds):
            for variant, make in VARIANTS.items():
                name = f"start-{round_}-{variant.split()[0].lower()}"
                samples[variant].append(create_to_running(api, make(name, args.image), args.timeout))
        print(f"create -> container running, seconds, {args.rounds} rounds alternating, image {args.image}, "
              f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        floor = statistics.median(samples["bare"])
        for variant, values in samples.items():
            median = statistics.median(values)
            print(f"  {variant:18s} median {median:5.2f}  (+{median - floor:4.2f})  "
                  + " ".join(f"{v:.2f}" for v in values))
    finally:
        api.delete_namespace(NAMESPACE)


if __name__ == "__main__":
    main()
