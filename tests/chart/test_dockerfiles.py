"""Both images install their dependencies in a layer of their own, from pyproject.toml alone, before the source:
a change to the source or the README (both in the build context) then rebuilds only the small layers after it
(measured with ../shared/kube/build-image.sh: the operator image's rebuild after a README change went from
minutes to seconds)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ._helm import REPO

DOCKERFILES = {"operator": REPO / "operator" / "Dockerfile", "runtime": REPO / "images" / "runtime" / "Dockerfile"}


def _build_stage(path: Path) -> list[str]:
    """The instructions of the first stage (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    stages = [n for n, line in enumerate(lines) if line.upper().startswith("FROM ")]
    return lines[stages[0]:stages[1]]


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dependencies_are_installed_before_the_source_is_copied(image: str) -> None:
    stage = _build_stage(DOCKERFILES[image])
    copies = [(n, line) for n, line in enumerate(stage) if line.upper().startswith("COPY ")]
    whole = next(n for n, line in copies if line.split()[1:] == [".", "."])
    assert [line for n, line in copies if n < whole] == ["COPY pyproject.toml ."], \
        f"{image}: only pyproject.toml may reach the build before the dependencies are installed"
    installs = [n for n, line in enumerate(stage) if line.upper().startswith("RUN ") and "pip install" in line]
    assert installs and installs[0] < whole, f"{image}: the dependencies' pip install comes before COPY . ."
    dependencies = stage[installs[0]]
    assert "tomllib" in dependencies and "dependencies" in dependencies, \
        f"{image}: the dependencies come from pyproject.toml"
    assert all("--no-deps" in stage[n] for n in installs if n > whole), \
        f"{image}: after the source, only our own package is installed"


def test_operator_layer_installs_what_the_operator_extra_lists() -> None:
    stage = _build_stage(DOCKERFILES["operator"])
    first_install = next(line for line in stage if line.upper().startswith("RUN ") and "pip install" in line)
    assert "['optional-dependencies']['operator']" in first_install
