#!/usr/bin/env bash
# A separate venv with the original seamless-dask-wrapper (seamless-dask 0.4), for side-by-side benches.
# Separate because both packages install a console script named seamless-dask-wrapper.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.bench/original
[ -x "$dir/bin/seamless-dask-wrapper" ] && [ -x "$dir/bin/seamless-database" ] && exit 0
python3 -m venv "$dir"
# With the services the launcher starts from the same environment (bench/seamless_workload.py).
"$dir/bin/python" -m pip install -q "seamless-dask==0.4" seamless-transformer seamless-remote seamless-config \
  hashserver aiofiles seamless-database
echo "original wrapper: $dir/bin/seamless-dask-wrapper"
