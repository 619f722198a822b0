#!/usr/bin/env python3
"""Check the kubectl and helm that PATH gives before using them: found, and versions that work here.

    scripts/check-k8s-tools.py             # kubectl against the server of $KUBECONFIG, and helm
    scripts/check-k8s-tools.py --client    # no server yet: both found, helm new enough

kubectl must be within one minor version of the API server (Kubernetes' version skew policy for kubectl:
an older one silently misses fields and flags of the server, a newer one may send what it cannot take).
helm must be at least MIN_HELM (values.schema.json, `helm test`, `--wait` for the chart's objects).
Prints what it found on stderr; exits 1 with the fix when something is off. Standard library only, so any
python3 runs it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys

MIN_HELM = (3, 8)
KUBECTL_SKEW = 1  # minor versions either way
FIX_TOOLS = "scripts/get-k8s-tools.sh .venv/bin && export PATH=$PWD/.venv/bin:$PATH"
_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``v1.36.2``, ``v1.32.4-dispatcher``, ``v4.3.1+g1234`` -> (major, minor, patch); None if none."""
    found = _VERSION.search(text or "")
    return (int(found[1]), int(found[2]), int(found[3] or 0)) if found else None


def _show(version: tuple[int, int, int]) -> str:
    return "v" + ".".join(map(str, version))


def kubectl_problem(client: tuple[int, int, int], server: tuple[int, int, int] | None, path: str) -> str | None:
    """Why this kubectl should not talk to this server, with the fix; None when it may."""
    if server is None:
        return None
    if client[0] == server[0] and abs(client[1] - server[1]) <= KUBECTL_SKEW:
        return None
    low, high = server[1] - KUBECTL_SKEW, server[1] + KUBECTL_SKEW
    direction = "older" if (client[0], client[1]) < (server[0], server[1]) else "newer"
    return (f"kubectl {_show(client)} ({path}) is {direction} than the server {_show(server)} by more than "
            f"Kubernetes' supported skew of one minor version. Fix: use kubectl v{server[0]}.{low}-"
            f"v{server[0]}.{high} first on PATH ({FIX_TOOLS} installs one, or see "
            "https://kubernetes.io/docs/tasks/tools/)")


def helm_problem(version: tuple[int, int, int], path: str) -> str | None:
    if version[:2] >= MIN_HELM:
        return None
    return (f"helm {_show(version)} ({path}) is older than v{MIN_HELM[0]}.{MIN_HELM[1]}, which the chart needs. "
            f"Fix: {FIX_TOOLS} (or https://helm.sh/docs/intro/install/)")


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, check=False)


def kubectl_versions(kubectl: str, client_only: bool) -> tuple[tuple[int, int, int] | None, tuple[int, int, int] | None,
                                                                 str]:
    """(client, server, error): the server's is None with ``client_only`` or when it cannot be reached."""
    args = ["version", "-o", "json"] + (["--client"] if client_only else ["--request-timeout=20s"])
    proc = _run(kubectl, *args)
    try:
        answer = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None, None, proc.stderr.strip()
    client = parse_version((answer.get("clientVersion") or {}).get("gitVersion", ""))
    server = parse_version((answer.get("serverVersion") or {}).get("gitVersion", ""))
    return client, server, "" if server or client_only else proc.stderr.strip()


def check(client_only: bool) -> list[str]:
    """Problems found (empty: fine); what was found goes to stderr."""
    problems = []
    kubectl, helm = shutil.which("kubectl"), shutil.which("helm")
    if kubectl is None:
        problems.append(f"kubectl is not on PATH. Fix: {FIX_TOOLS}")
    else:
        client, server, error = kubectl_versions(kubectl, client_only)
        if client is None:
            problems.append(f"{kubectl} does not say its version ({error or 'no answer'}). Fix: {FIX_TOOLS}")
        elif not client_only and server is None:
            problems.append(f"the API server of $KUBECONFIG does not answer kubectl: {error}")
        else:
            print(f"kubectl {_show(client)} ({kubectl})" + (f", server {_show(server)}" if server else ""),
                  file=sys.stderr)
            problems.append(kubectl_problem(client, server, kubectl) or "")
    if helm is None:
        problems.append(f"helm is not on PATH. Fix: {FIX_TOOLS}")
    else:
        version = parse_version(_run(helm, "version", "--short").stdout)
        if version is None:
            problems.append(f"{helm} does not say its version. Fix: {FIX_TOOLS}")
        else:
            print(f"helm {_show(version)} ({helm})", file=sys.stderr)
            problems.append(helm_problem(version, helm) or "")
    return [p for p in problems if p]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", action="store_true", help="no server: check that both exist, helm's version")
    problems = check(parser.parse_args(argv).client)
    for problem in problems:
        print(f"check-k8s-tools: error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
