"""v1beta1 is stored and served, v1alpha1 still served with the same schema (issue 22, "A version path for the API"):
a resource made as v1alpha1 before an upgrade is served by the operator and keeps answering to
``kubectl get sdc.v1alpha1.seamless.dask.org``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from seamless_dask_runtime.model.identity import EARLIER_VERSIONS, GROUP, KIND, PLURAL, VERSION
from tests.operator.conftest import Clusters

pytestmark = pytest.mark.kube
KUBECTL = str(Path(sys.executable).parent / "kubectl")


def test_a_resource_made_as_v1alpha1_is_served_and_read_under_both_versions(
        operator: Any, clusters: Clusters, control_plane: Any) -> None:
    [old] = EARLIER_VERSIONS
    clusters.custom.create_namespaced_custom_object(GROUP, old, clusters.namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{old}", "kind": KIND, "metadata": {"name": "veteran"},
        "spec": {"workers": {"replicas": 1, "maximum": 1}}})
    clusters.wait_status("veteran", lambda s: s.get("phase") == "Starting" and s.get("workersDesired") == 1,
                         description="served by the operator (which speaks the stored version)")
    assert clusters.children("veteran") == (["veteran-worker-0"], 1, 1)
    for version in (old, VERSION):
        got = subprocess.run([KUBECTL, "--kubeconfig", str(control_plane.kubeconfig), "-n", clusters.namespace,
                              "get", f"{PLURAL}.{version}.{GROUP}", "veteran", "-o", "jsonpath={.apiVersion} "
                              "{.status.phase}"], capture_output=True, text=True, timeout=60)
        assert got.returncode == 0 and got.stdout == f"{GROUP}/{version} Starting", (version, got.stdout, got.stderr)
