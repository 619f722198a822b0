"""The README's "Try it on a real cluster", run as written on the node of ../shared/kube: its own code blocks
(tools, the node and the images, the operator and a first cluster, clean-up), in one shell, from the
repository's root, as a new user would paste them.

It starts and stops its own node, as the README says, so it runs before the tests that share the suite's node
(``conftest.py`` puts it first): one node per machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from .platform import REPO, KnodePlatform, _stale_nodes, run

SECTION = "## Try it on a real cluster"
NODE_VARIABLES = ("KUBECONFIG", "KNODE_DIR", "CONTAINERD_ADDRESS", "CONTAINERD_NAMESPACE")


def readme_blocks() -> dict[str, str]:
    """The section's bash blocks by their number: "1", "2a", "2b", "3", "4a", "4b"."""
    section = (REPO / "README.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return {re.match(r"# (\w+)\.", block)[1]: block for block in blocks}  # type: ignore[index]


def test_the_section_has_a_path_for_the_node_and_for_kind() -> None:
    blocks = readme_blocks()
    assert set(blocks) == {"1", "2a", "2b", "3", "4a", "4b"}, sorted(blocks)
    assert "node-up.sh" in blocks["2a"] and "build-image.sh" in blocks["2a"] and "kind load" in blocks["2b"]
    assert "check-k8s-tools.py" in blocks["3"] and "runtimeImage" in blocks["3"]
    assert "examples/minimal.yaml" in blocks["3"] and "--replicas=2" in blocks["3"]


@pytest.mark.timeout(1800)  # cold image builds on a loaded 2-CPU machine
def test_try_it_on_a_real_cluster_runs_as_written() -> None:
    reason = KnodePlatform.why_not()
    if reason is not None:
        pytest.skip(f"runs on the node of ../shared/kube: {reason} (on kind the suite's cluster is the README's "
                    "kind-config.yaml cluster, which step 2b would create a second time)")
    if os.environ.get("KNODE_DIR"):
        pytest.skip("a node is up already (KNODE_DIR): the README starts its own, and a machine has one")
    kube = REPO.parent / "shared" / "kube"
    if not (kube / "node-up.sh").is_file():
        pytest.skip(f"the README's ../shared/kube is not beside this checkout ({kube})")
    blocks = readme_blocks()
    node_dir = Path(re.search(r"node-up\.sh (\S+)\)", blocks["2a"])[1])  # type: ignore[index]
    assert f"node-down.sh {node_dir}" in blocks["4a"], "step 4a removes the node step 2a started"
    for stale in {node_dir, *_stale_nodes()}:  # left by a killed run (the bridge would refuse a new node)
        if stale.exists():
            run(str(kube / "node-down.sh"), str(stale), check=False, timeout=180)

    # A new user's shell: no cluster exported yet.
    env = {k: v for k, v in os.environ.items() if k not in NODE_VARIABLES}
    script = "set -euo pipefail\n" + "".join(blocks[n] for n in ("1", "2a", "3", "4a"))
    started = time.monotonic()
    try:
        proc = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=1700, stdin=subprocess.DEVNULL, check=False)
    finally:
        if node_dir.exists():  # a failed step: the node must not outlive the test
            run(str(kube / "node-down.sh"), str(node_dir), check=False, timeout=180)
    seconds = time.monotonic() - started
    print(f"README section ran in {seconds:.0f} s (exit {proc.returncode})\n{proc.stdout}\n{proc.stderr[-6000:]}")
    assert proc.returncode == 0, f"the README's steps failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    lines = proc.stdout.splitlines()
    assert "3" in lines, "the cluster computed 1 + 2"
    listed = next(line for line in lines if line.startswith("minimal "))
    assert listed.split()[1:4] == ["Running", "2", "2"], listed  # PHASE READY DESIRED after the scale
    assert not node_dir.exists()
