#!/usr/bin/env bash
# Architecture checks run by .ci/run: import layers (import-linter contracts in pyproject.toml)
# and types (mypy over the operator and the runtime's model).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=operator .venv/bin/lint-imports
.venv/bin/mypy \
  seamless_dask_runtime/parameters.py seamless_dask_runtime/identity.py seamless_dask_runtime/durations.py \
  operator/seamless_dask_operator
