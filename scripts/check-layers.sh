#!/usr/bin/env bash
# Architecture checks run by .ci/run: import layers (import-linter contracts in pyproject.toml)
# and types of the pure core (mypy on the model, builders and decide).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=operator .venv/bin/lint-imports
.venv/bin/mypy \
  seamless_dask_runtime/parameters.py seamless_dask_runtime/identity.py seamless_dask_runtime/durations.py \
  operator/seamless_dask_operator/decide.py operator/seamless_dask_operator/observation.py \
  operator/seamless_dask_operator/status.py operator/seamless_dask_operator/scaling.py \
  operator/seamless_dask_operator/pod_problems.py operator/seamless_dask_operator/resource.py \
  operator/seamless_dask_operator/builders
