"""The real ``kubectl``, run with the user's connection flags: the plugin's only way to the cluster.

Shelling out keeps kubeconfig, contexts, namespaces, exec credential plugins
and proxies exactly as kubectl has them, and the plugin free of a Kubernetes
client. When kubectl runs the plugin it says where it is (``KUBECTL_PATH``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


class KubectlError(RuntimeError):
    """kubectl failed or is missing; the message is kubectl's own words, or the fix."""


_FORWARDING = re.compile(r"^Forwarding from (?:127\.0\.0\.1|\[::1\]|[\w.:-]+?):(\d+) -> (\d+)")


def forwarded_ports(lines: Sequence[str]) -> dict[int, int]:
    """Remote port → local port, from ``kubectl port-forward``'s "Forwarding from ADDRESS:LOCAL -> REMOTE" lines."""
    ports: dict[int, int] = {}
    for line in lines:
        match = _FORWARDING.match(line.strip())
        if match:
            ports.setdefault(int(match.group(2)), int(match.group(1)))
    return ports


def find_kubectl(environ: dict[str, str] | None = None) -> str:
    environ = dict(os.environ) if environ is None else environ
    found = environ.get("KUBECTL_PATH") or shutil.which("kubectl", path=environ.get("PATH"))
    if not found:
        raise KubectlError("kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/)")
    return found


@dataclass(frozen=True)
class Kubectl:
    """``kubectl`` with the connection flags the user gave (``--kubeconfig``, ``--context``)."""

    binary: str
    flags: tuple[str, ...] = ()

    def command(self, *args: str) -> list[str]:
        return [self.binary, *self.flags, *args]

    def run(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.command(*args), capture_output=True, text=True, input=input, check=False,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise KubectlError(proc.stderr.strip() or f"kubectl {' '.join(args)} exited {proc.returncode}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def call(self, *args: str) -> int:
        """Run with the user's terminal (logs -f); kubectl's exit code. Interrupted, kubectl is stopped too."""
        proc = subprocess.Popen(self.command(*args))
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise

    @contextlib.contextmanager
    def port_forward(self, namespace: str, target: str, ports: Sequence[tuple[int, int]], address: str = "127.0.0.1",
                     timeout: float = 60) -> Iterator[Forward]:
        """``kubectl port-forward`` of ``(local, remote)`` pairs (local 0: any free port) while in the block.

        Yields once kubectl says it forwards every port.
        """
        specs = [f"{local}:{remote}" if local else f":{remote}" for local, remote in ports]
        proc = subprocess.Popen(self.command("port-forward", "-n", namespace, "--address", address, target, *specs),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        errors: list[str] = []
        threading.Thread(target=_drain, args=(proc.stderr, errors), daemon=True).start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            lines: list[str] = []
            wanted = {remote for _, remote in ports}
            while not wanted <= forwarded_ports(lines).keys():
                line = proc.stdout.readline() if proc.stdout is not None else ""
                if not line:
                    proc.wait()
                    raise KubectlError(_last_words(errors) or f"kubectl port-forward {target} exited {proc.returncode}")
                lines.append(line)
            timer.cancel()
            threading.Thread(target=_drain, args=(proc.stdout, []), daemon=True).start()  # a full pipe blocks kubectl
            yield Forward(forwarded_ports(lines), proc, errors)
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@dataclass
class Forward:
    """A running ``kubectl port-forward``: remote port → local port."""

    ports: dict[int, int]
    process: subprocess.Popen[str]
    errors: list[str]

    def wait(self) -> str:
        """Until kubectl stops forwarding (the pod went, the connection broke); what it said."""
        self.process.wait()
        return _last_words(self.errors) or f"kubectl port-forward exited {self.process.returncode}"


def _drain(stream: Any, into: list[str]) -> None:
    for line in stream:
        into.append(line)


def _last_words(errors: list[str]) -> str:
    time.sleep(0.1)  # the reader thread may still be appending kubectl's last line
    return "".join(errors).strip()
