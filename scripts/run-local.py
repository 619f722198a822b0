"""The main job on its embedded default: seamless-dask-wrapper on a LocalCluster, driven like a launcher.

Writes a status file with local parameters, starts ``seamless-dask-wrapper``,
waits for ``running``, computes through ``distributed.Client``, asks the
scheduler's throttle for a permission, then lets the inactivity timeout shut
the cluster down and checks the status file is gone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distributed import Client

from seamless_dask_runtime.throttle import ThrottleClient

PARAMETERS = {"cores": 1, "maximum_jobs": 2, "transformation_throttle": 3, "timeout": 5}


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="seamless-dask-"))
    status_file = workdir / "status.json"
    status_file.write_text(json.dumps({"workdir": str(workdir), "log": str(workdir / "wrapper.log"),
                                       "status": "starting", "parameters": PARAMETERS}))
    wrapper = Path(sys.executable).parent / "seamless-dask-wrapper"
    command = [str(wrapper), "distributed::LocalCluster", "--port-range", "40000", "49999",
               "--host", "127.0.0.1", "--status-file", str(status_file)]
    print("$", " ".join(command))
    started = time.monotonic()
    proc = subprocess.Popen(command,
                            stderr=subprocess.DEVNULL)
    while (status := json.loads(status_file.read_text())).get("status") == "starting":
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    print(f"status {status['status']!r} after {time.monotonic() - started:.1f} s:",
          json.dumps({k: status.get(k) for k in ("port", "dashboard_port", "scheduler_address", "error")}))
    if status["status"] != "running":
        return 1
    with Client(f"tcp://127.0.0.1:{status['port']}") as client:
        total = client.submit(sum, range(1_000_001)).result()
        print("sum(range(1_000_001)) computed on the cluster:", total)
        with ThrottleClient(client).permission() as permission:
            print("throttle permission granted:", permission is not None, ThrottleClient(client).stats())
    print("client gone; waiting for the inactivity timeout (5 s) ...")
    code = proc.wait(60)
    print(f"wrapper exited {code}; status file deleted: {not status_file.exists()}")
    return 0 if code == 0 and not status_file.exists() else 1


if __name__ == "__main__":
    sys.exit(main())
