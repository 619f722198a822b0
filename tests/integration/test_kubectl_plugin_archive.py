"""The krew archive of ``kubectl sdc`` and its manifest: reproducible, valid for krew, runnable with a bare python3.

The extracted ``kubectl-sdc`` is found by the real kubectl's plugin lookup on
PATH and run by a ``python3`` that has no site-packages (``-S``): the plugin
needs nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from seamless_dask_runtime.launcher.kubectl_plugin.package import (
    ARCHIVE,
    BINARY,
    MANIFEST_TEMPLATE,
    archive_bytes,
    build,
)
from seamless_dask_runtime.launcher.kubectl_plugin.recipe import RecipeOptions, recipe_text
from tests.chart._helm import find_tool


def test_archive_is_reproducible_and_the_manifest_names_its_sha256(tmp_path: Path) -> None:
    assert archive_bytes() == archive_bytes()
    archive, manifest_path = build(tmp_path, "v0.1.0")
    manifest = yaml.safe_load(manifest_path.read_text())
    # What krew validates (pkg/index/validation): kind, name = file name, semver version, platforms each with
    # a selector, an https uri, the archive's sha256 and a bin the archive holds.
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin"
    assert manifest["metadata"]["name"] == manifest_path.stem == "sdc"
    spec = manifest["spec"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", spec["version"]) and spec["version"] == "v0.1.0"
    assert spec["shortDescription"] and len(spec["shortDescription"]) < 80 and spec["homepage"].startswith("https://")
    (platform,) = spec["platforms"]
    assert platform["selector"]["matchExpressions"][0]["key"] == "os"
    assert platform["uri"].startswith("https://") and platform["uri"].endswith(f"/v0.1.0/{ARCHIVE}")
    assert platform["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    with tarfile.open(archive) as tar:
        member = tar.getmember(platform["bin"])
        assert member.isfile() and member.mode & 0o111
    assert "{{" not in manifest_path.read_text()
    assert "addURIAndSha" in MANIFEST_TEMPLATE.read_text()  # the repository keeps the template


def test_extracted_plugin_runs_through_kubectl_with_a_bare_python(tmp_path: Path) -> None:
    kubectl = find_tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH (scripts/get-k8s-tools.sh)")
    archive, _ = build(tmp_path / "dist", "v0.1.0")
    bin_dir = tmp_path / "bin"
    with tarfile.open(archive) as tar:
        tar.extractall(bin_dir, filter="data")
    # `python3` here: this interpreter without site-packages, so only the standard library is importable.
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp_path)}
    listed = subprocess.run([kubectl, "plugin", "list"], capture_output=True, text=True, env=env, check=False)
    assert str(bin_dir / BINARY) in listed.stdout, listed.stdout + listed.stderr
    proc = subprocess.run([kubectl, "sdc", "recipe", "-n", "team-a", "--image", "reg.example/rt:1",
                           "--services-address", "192.0.2.10", "--data-dir", "/srv/data"],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == recipe_text(RecipeOptions(namespace="team-a", image="reg.example/rt:1",
                                                    data_dir="/srv/data", services_address="192.0.2.10"))
    # A command that needs the cluster says what kubectl said, in one line, and fails.
    proc = subprocess.run([kubectl, "sdc", "status", "demo", "--kubeconfig", str(tmp_path / "none")],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("kubectl sdc status: "), proc.stderr
