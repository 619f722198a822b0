"""Where the end-to-end suite runs: a cluster that runs pods, and a way to put our images into it.

Two platforms, one interface, so every e2e test runs unchanged on both:

* ``KnodePlatform``: the real single-node Kubernetes of ``../shared/kube/node-up.sh``
  (kubelet, containerd, DNS; root only, no Docker). Used when ``SDO_NODE_UP``
  names node-up.sh (scripts/test.sh sets it when root and the node's Debian
  packages are installed), or when ``KNODE_DIR`` + ``KUBECONFIG`` point at a
  node that is already up. Images are built with its ``build-image.sh``
  (buildah) and imported into the node's containerd.
* ``KindPlatform``: kind + a Docker engine (GitHub Actions,
  .github/workflows/e2e-kind.yml). ``SDO_E2E_CLUSTER`` names an existing kind
  cluster; otherwise one is created from kind-config.yaml and deleted after.
  Images are built with ``docker build`` and ``kind load``-ed.

``find_platform`` returns the first that can run here, or the reasons none can.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
KIND_CONFIG = REPO / "kind-config.yaml"


def tool(name: str) -> str | None:
    """A command on PATH or beside this Python (the venv's kubectl/helm)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def run(*cmd: str, env: dict[str, str] | None = None, timeout: float = 900, check: bool = True,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=timeout, check=False,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@dataclass
class Platform:
    """A cluster that runs pods: its kubectl environment, and how images get into it."""

    name: str
    env: dict[str, str] = field(default_factory=dict)

    def build_image(self, dockerfile: Path, tag: str, build_args: dict[str, str] | None = None,
                    context: Path = REPO) -> float:
        """Build ``dockerfile`` (context: the repository, or an earlier commit's checkout) as ``tag`` and make it
        available to pods; seconds."""
        raise NotImplementedError

    def image_size(self, tag: str) -> int | None:
        """Bytes of the image as stored (uncompressed), if the platform can tell."""
        return None

    @property
    def oom_kills_containers(self) -> bool:
        """Whether an OOM kill ends the whole container (cgroup v2 group kill), so Kubernetes reports OOMKilled."""
        return True

    @property
    def enforces_network_policies(self) -> bool:
        """Whether the network plugin enforces NetworkPolicies (kind's kindnet does since v0.24)."""
        return True

    def close(self) -> None:
        pass


def _build_arg_flags(build_args: dict[str, str] | None) -> list[str]:
    return [flag for k, v in (build_args or {}).items() for flag in ("--build-arg", f"{k}={v}")]


def _stale_nodes(bridge: str = "knode0") -> list[Path]:
    """Folders of nodes whose processes are gone but whose bridge is still there (a killed session's)."""
    if subprocess.run(["ip", "link", "show", bridge], capture_output=True, check=False).returncode != 0:
        return []
    stale = []
    for marker in Path(os.environ.get("TMPDIR", "/tmp")).glob("*/bridge"):
        pid_file = marker.parent / "apiserver.pid"
        alive = pid_file.is_file() and Path(f"/proc/{pid_file.read_text().strip()}").exists()
        if marker.read_text().strip() == bridge and not alive:
            stale.append(marker.parent)
    return stale


@dataclass
class KnodePlatform(Platform):
    kube_dir: Path = REPO
    node_dir: Path | None = None
    started: bool = False

    @classmethod
    def why_not(cls) -> str | None:
        if os.environ.get("KNODE_DIR") and os.environ.get("KUBECONFIG"):
            return None
        up = os.environ.get("SDO_NODE_UP")
        if not up:
            return "SDO_NODE_UP is not set (point it at ../shared/kube/node-up.sh; scripts/test.sh does as root)"
        if not Path(up).is_file():
            return f"SDO_NODE_UP={up} does not exist"
        if os.geteuid() != 0:
            return "node-up.sh needs root"
        for command in ("containerd", "runc", "buildah", "iptables"):
            if shutil.which(command) is None:
                return f"{command} is not installed (apt-get install containerd runc containernetworking-plugins " \
                       "iptables iproute2 zstd openssl curl buildah mmdebstrap)"
        return None

    @classmethod
    def start(cls, workdir: Path) -> KnodePlatform:
        if os.environ.get("KNODE_DIR") and os.environ.get("KUBECONFIG"):
            node_dir = Path(os.environ["KNODE_DIR"])
            up = os.environ.get("SDO_NODE_UP") or str(REPO.parent / "shared" / "kube" / "node-up.sh")
            return cls("knode (existing)", env=dict(os.environ), kube_dir=Path(up).parent, node_dir=node_dir)
        up = Path(os.environ["SDO_NODE_UP"]).resolve()
        # A fixed folder, so that a node left by a killed run is found and taken down first
        # (node-up.sh refuses to start while its bridge exists).
        node_dir = Path(os.environ.get("SDO_NODE_DIR", "/tmp/sdo-e2e-knode"))
        for stale in {node_dir, *_stale_nodes()}:
            if stale.exists():
                run(str(up.parent / "node-down.sh"), str(stale), check=False, timeout=180)
        started = time.monotonic()
        proc = run(str(up), str(node_dir), timeout=300, check=False)
        if proc.returncode != 0:
            run(str(up.parent / "node-down.sh"), str(node_dir), check=False, timeout=120)
            raise AssertionError(f"node-up.sh failed:\n{proc.stderr[-4000:]}")
        env = dict(os.environ)
        for line in proc.stdout.splitlines():
            if line.startswith("export ") and "=" in line:
                key, _, value = line[len("export "):].partition("=")
                env[key] = value.strip().strip("'\"")
        print(f"knode up in {time.monotonic() - started:.1f} s", flush=True)
        return cls("knode", env=env, kube_dir=up.parent, node_dir=node_dir, started=True)

    def build_image(self, dockerfile: Path, tag: str, build_args: dict[str, str] | None = None,
                    context: Path = REPO) -> float:
        started = time.monotonic()
        run(str(self.kube_dir / "build-image.sh"), str(dockerfile), str(context), tag, *_build_arg_flags(build_args),
            env=self.env, timeout=1800)
        return time.monotonic() - started

    def image_size(self, tag: str) -> int | None:
        ref = tag if "/" in tag else f"docker.io/library/{tag}"
        proc = run("ctr", "--address", self.env["CONTAINERD_ADDRESS"], "--namespace", "k8s.io", "images", "ls",
                   env=self.env, check=False)
        for line in proc.stdout.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == ref:
                # REF TYPE DIGEST SIZE UNIT PLATFORMS LABELS: SIZE UNIT is the compressed content size
                number, unit = float(parts[3]), parts[4]
                return int(number * {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}.get(unit, 1))
        return None

    @property
    def enforces_network_policies(self) -> bool:
        return False  # ../shared/kube's node: a plain CNI bridge, no policy engine

    @property
    def oom_kills_containers(self) -> bool:
        # The node is this host: its kernel's cgroup version decides.
        return subprocess.run(["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True, text=True,
                              check=False).stdout.strip() == "cgroup2fs"

    def close(self) -> None:
        if self.started and self.node_dir is not None and os.environ.get("SDO_E2E_KEEP_CLUSTER") != "1":
            run(str(self.kube_dir / "node-down.sh"), str(self.node_dir), check=False, timeout=180)


@dataclass
class KindPlatform(Platform):
    cluster: str = "seamless-dask-e2e"
    created: bool = False

    @classmethod
    def why_not(cls) -> str | None:
        if tool("kind") is None:
            return "kind is not on PATH"
        if tool("docker") is None:
            return "docker is not on PATH (kind needs a Docker engine)"
        info = run(tool("docker") or "docker", "info", check=False, timeout=30)
        if info.returncode != 0:
            return f"no Docker engine (`docker info` exited {info.returncode})"
        return None

    @classmethod
    def start(cls, workdir: Path) -> KindPlatform:
        kind = tool("kind") or "kind"
        existing = os.environ.get("SDO_E2E_CLUSTER", "").strip()
        name = existing or yaml.safe_load(KIND_CONFIG.read_text()).get("name", "seamless-dask-e2e")
        created = False
        if name not in run(kind, "get", "clusters").stdout.split():
            run(kind, "create", "cluster", "--name", name, "--config", str(KIND_CONFIG), "--wait", "120s", timeout=600)
            created = True
        kubeconfig = workdir / "kind-kubeconfig"
        kubeconfig.write_text(run(kind, "get", "kubeconfig", "--name", name).stdout)
        return cls("kind", env={**os.environ, "KUBECONFIG": str(kubeconfig)}, cluster=name, created=created)

    def build_image(self, dockerfile: Path, tag: str, build_args: dict[str, str] | None = None,
                    context: Path = REPO) -> float:
        started = time.monotonic()
        docker = tool("docker") or "docker"
        run(docker, "build", "-f", str(dockerfile), *_build_arg_flags(build_args), "-t", tag, str(context),
            timeout=1800)
        run(tool("kind") or "kind", "load", "docker-image", tag, "--name", self.cluster, timeout=900)
        return time.monotonic() - started

    def image_size(self, tag: str) -> int | None:
        proc = run(tool("docker") or "docker", "image", "inspect", "--format", "{{.Size}}", tag, check=False)
        return int(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip().isdigit() else None

    def close(self) -> None:
        if self.created and os.environ.get("SDO_E2E_KEEP_CLUSTER") != "1":
            run(tool("kind") or "kind", "delete", "cluster", "--name", self.cluster, check=False, timeout=300)


def find_platform(workdir: Path) -> Platform | str:
    """A started platform, or why none can run here."""
    reasons = []
    for kind in (KnodePlatform, KindPlatform):
        reason = kind.why_not()
        if reason is None:
            return kind.start(workdir)
        reasons.append(f"{kind.__name__}: {reason}")
    return "no cluster that runs pods: " + "; ".join(reasons)
