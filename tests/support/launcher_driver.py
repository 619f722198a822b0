"""Drive ``seamless-dask-wrapper`` through its real clients, as seamless-remote does.

``seamless_config.tools.configure_daskserver()`` builds the launcher config,
``remote_http_launcher.run(config)`` starts the wrapper and waits for it,
``distributed.Client`` computes, ``seamless-service-stop`` stops it. Runs in
its own process (it sets ``HOME`` and ``PATH``): prints one JSON line.

    python -m tests.support.launcher_driver '{"parameters": {...}}'
"""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CLUSTER, PROJECT = "testcluster", "proj"


def _clusters(queue: dict) -> dict:
    return {
        "local_cluster": CLUSTER,  # no SSH: the launcher's LocalExecutor
        CLUSTER: {
            "type": "local",  # cluster string distributed::LocalCluster
            "workers": 1,
            "frontends": [{"daskserver": {"network_interface": "127.0.0.1", "port_start": 61000,
                                          "port_end": 61999}}],
            "queues": {"default": queue},
            "default_queue": "default",
        },
    }


def main(request: dict) -> dict:
    home = Path(tempfile.mkdtemp(prefix="launcher-home-"))
    queue = request.get("queue") or {"walltime": "01:00:00", "memory": "1GB", "maximum_jobs": 1}
    (home / ".seamless").mkdir()
    (home / ".seamless" / "clusters.yaml").write_text(yaml.safe_dump(_clusters(queue)))
    os.environ["HOME"] = str(home)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    for variable in ("REMOTE_HTTP_LAUNCHER_DIR", "SEAMLESS_CACHE", "RHL_TOOLS_YAML"):
        os.environ.pop(variable, None)

    import remote_http_launcher
    from distributed import Client
    from seamless_config import select
    from seamless_config.cluster import define_clusters
    from seamless_config.config_files import load_tools
    from seamless_config.tools import configure_daskserver

    load_tools()
    define_clusters(_clusters(queue))
    select.select_cluster(CLUSTER)
    select.select_project(PROJECT)
    config = configure_daskserver()
    if "parameters" in request:
        config["file_parameters"] = request["parameters"]
    key = remote_http_launcher.Configuration.from_mapping(
        {k: v for k, v in config.items() if k not in ("log_level", "log_file", "debug_log_file")}).key
    status_file = home / ".remote-http-launcher" / "server" / f"{key}.json"
    result: dict = {"command": None, "error": None}
    started = time.monotonic()
    try:
        payload = remote_http_launcher.run(config)
    except Exception as exc:  # the launcher's own failure report
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["status_file_exists"] = status_file.exists()
        result["seconds_to_error"] = round(time.monotonic() - started, 2)
        log = status_file.with_suffix(".log")
        result["log"] = log.read_text() if log.exists() else ""
        return result
    result["seconds_to_up"] = round(time.monotonic() - started, 2)
    status = json.loads(status_file.read_text())
    result["status"] = status
    with Client(f"tcp://{payload['hostname']}:{payload['port']}", timeout="20s") as client:
        result["sum"] = client.submit(operator.add, 20, 22).result(timeout=60)
    stop = subprocess.run(["seamless-service-stop", "--service", "daskserver", "--cluster", CLUSTER,
                           "--project", PROJECT], cwd=home, capture_output=True, text=True)
    result["stop_returncode"] = stop.returncode
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and status_file.exists():
        time.sleep(0.2)
    result["status_file_exists"] = status_file.exists()
    pid = status["pid"]
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and \
            Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.2)
    result["wrapper_exited"] = not Path(f"/proc/{pid}").exists() or \
        Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return result


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))), flush=True)
