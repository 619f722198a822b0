"""Helpers of the chart tests: find the real helm/kubectl, render the chart, pick objects."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "seamless-dask-operator"
CRD = REPO / "crds" / "seamlessdaskclusters.yaml"
EXAMPLES = REPO / "examples"

#: Values of the two RBAC modes the chart supports.
CLUSTER_WIDE: dict[str, Any] = {}
NAMESPACED: dict[str, Any] = {"watchNamespaces": ["team-a", "team-b"]}


def find_tool(name: str) -> str | None:
    """``name`` on PATH, else beside the running python (the venv's bin, where
    scripts/get-k8s-tools.sh installs helm)."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def set_args(values: Mapping[str, Any]) -> list[str]:
    """``--set-json`` arguments for ``values`` (exact types, lists included)."""
    import json

    return [arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


def run(cmd: list[str], *, env: Mapping[str, str] | None = None, timeout: float = 120,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def render(helm: str, values: Mapping[str, Any] | None = None, *, release: str = "sdo",
           namespace: str = "seamless-dask", include_crds: bool = False,
           extra: Iterable[str] = (), uninstall_hook: bool = False) -> list[dict[str, Any]]:
    """``helm template`` the chart; the rendered objects (the test hook included; the uninstall hook's
    objects, which exist only while ``helm uninstall`` runs, when asked)."""
    cmd = [helm, "template", release, str(CHART), "--namespace", namespace, *set_args(values or {}),
           *extra]
    if include_crds:
        cmd.append("--include-crds")
    out = run(cmd).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc and (uninstall_hook or hook_of(doc) != "pre-delete")]


def hook_of(obj: Mapping[str, Any]) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook")


def by_kind(objects: Iterable[Mapping[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [dict(o) for o in objects if o.get("kind") == kind]


def one(objects: Iterable[Mapping[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if o["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def is_hook(obj: Mapping[str, Any]) -> bool:
    return "helm.sh/hook" in ((obj.get("metadata") or {}).get("annotations") or {})


def operator_deployment(objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    deployments = by_kind(objects, "Deployment")
    assert len(deployments) == 1, deployments
    return deployments[0]


def operator_container(objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    containers = operator_deployment(objects)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def hook_test_pod(objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    pods = [o for o in by_kind(objects, "Pod") if is_hook(o)]
    assert len(pods) == 1, pods
    return pods[0]


def load_examples() -> dict[str, list[dict[str, Any]]]:
    """Every examples/*.yaml: file name → its objects."""
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in sorted(EXAMPLES.glob("*.yaml"))
    }
