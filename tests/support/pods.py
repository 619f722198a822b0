"""Run a pod's container as a local process: its exact args and env, with addresses made local.

There is no kubelet here; a test that needs Dask behind a pod does what the
kubelet would, from the pod spec the operator built.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

_K8S_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def container_env(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif (item.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = pod_name
    return env


def container_command(container: dict[str, Any], env: dict[str, str], replace: dict[str, str]) -> list[str]:
    """``args`` with Kubernetes ``$(VAR)`` expansion and the given literal replacements."""
    command = []
    for arg in [*(container.get("command") or []), *container["args"]]:
        arg = _K8S_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), arg)
        command.append(replace.get(arg, arg))
    return command


def start_container(
    container: dict[str, Any], pod_name: str, replace: dict[str, str], log_path: str | None = None
) -> subprocess.Popen[bytes]:
    env = container_env(container, pod_name)
    command = container_command(container, env, replace)
    output = open(log_path, "wb") if log_path else subprocess.DEVNULL
    return subprocess.Popen(command, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
