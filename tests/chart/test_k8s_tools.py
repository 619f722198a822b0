"""scripts/check-k8s-tools.py: the kubectl and helm on PATH, checked before use (pure rules, then real binaries
against a real kube-apiserver)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.control_plane import ControlPlane

from ._helm import REPO, run

SCRIPT = REPO / "scripts" / "check-k8s-tools.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_k8s_tools", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tools = _script()


@pytest.mark.parametrize(("text", "version"), [
    ("v1.36.2", (1, 36, 2)), ("v1.32.4-dispatcher", (1, 32, 4)), ("v4.3.1+gc0d08d0", (4, 3, 1)),
    ("v1.37", (1, 37, 0)), ("", None), ("unknown", None),
])
def test_parse_version(text: str, version: tuple[int, int, int] | None) -> None:
    assert tools.parse_version(text) == version


@pytest.mark.parametrize(("client", "server", "fine"), [
    ((1, 36, 0), (1, 36, 2), True), ((1, 37, 1), (1, 36, 2), True), ((1, 35, 9), (1, 36, 2), True),
    ((1, 32, 4), (1, 36, 2), False), ((1, 38, 0), (1, 36, 2), False), ((1, 37, 1), (1, 33, 1), False),
    ((1, 37, 1), None, True),  # no server to compare with
])
def test_kubectl_skew(client: tuple[int, int, int], server: tuple[int, int, int] | None, fine: bool) -> None:
    problem = tools.kubectl_problem(client, server, "/usr/bin/kubectl")
    assert (problem is None) == fine, problem
    if problem:
        low, high = server[1] - 1, server[1] + 1  # type: ignore[index]
        assert f"v1.{low}-v1.{high}" in problem and "get-k8s-tools.sh" in problem and "/usr/bin/kubectl" in problem


@pytest.mark.parametrize(("version", "fine"), [((4, 3, 1), True), ((3, 8, 0), True), ((3, 7, 2), False),
                                               ((2, 17, 0), False)])
def test_helm_minimum(version: tuple[int, int, int], fine: bool) -> None:
    assert (tools.helm_problem(version, "helm") is None) == fine


def _path_with(tmp_path: Path, **binaries: str) -> str:
    """A PATH whose kubectl and helm are exactly these binaries (and nothing else of the kind)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, target in binaries.items():
        (bin_dir / name).unlink(missing_ok=True)
        (bin_dir / name).symlink_to(target)
    return f"{bin_dir}:/usr/bin:/bin"


def _check(control_plane: ControlPlane, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(SCRIPT), *args], env={**control_plane.env(), "PATH": path}, check=False)


def _server_minor(control_plane: ControlPlane, kubectl: str) -> int:
    answer = json.loads(run([kubectl, "version", "-o", "json"], env=control_plane.env()).stdout)
    return tools.parse_version(answer["serverVersion"]["gitVersion"])[1]


def test_real_kubectl_and_helm_pass_against_a_real_server(control_plane: ControlPlane, kubectl: str, helm: str,
                                                           tmp_path: Path) -> None:
    proc = _check(control_plane, _path_with(tmp_path, kubectl=kubectl, helm=helm))
    assert proc.returncode == 0, proc.stderr
    assert "kubectl v1." in proc.stderr and ", server v1." in proc.stderr and "helm v" in proc.stderr


def test_an_old_system_kubectl_is_refused_with_the_fix(control_plane: ControlPlane, kubectl: str, helm: str,
                                                       tmp_path: Path) -> None:
    """The issue's case: a system kubectl four minor versions behind the server, first on PATH."""
    server = _server_minor(control_plane, kubectl)
    old = []
    for candidate in {shutil.which("kubectl", path=p) for p in ("/usr/local/bin", "/usr/bin", "/bin")} - {None}:
        answer = run([candidate, "version", "--client", "-o", "json"], check=False).stdout
        version = tools.parse_version(json.loads(answer or "{}").get("clientVersion", {}).get("gitVersion", ""))
        if version and abs(version[1] - server) > 1:
            old.append((candidate, version))
    if not old:
        pytest.skip(f"no kubectl on this system is more than one minor version from the server's v1.{server}")
    candidate, version = old[0]
    proc = _check(control_plane, _path_with(tmp_path, kubectl=candidate, helm=helm))
    assert proc.returncode == 1
    assert f"kubectl v{version[0]}.{version[1]}" in proc.stderr and f"v1.{server - 1}-v1.{server + 1}" in proc.stderr
    assert "scripts/get-k8s-tools.sh" in proc.stderr


def test_missing_tools_are_named_with_the_fix(control_plane: ControlPlane, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _check(control_plane, str(empty), "--client")
    assert proc.returncode == 1
    assert "kubectl is not on PATH" in proc.stderr and "helm is not on PATH" in proc.stderr
