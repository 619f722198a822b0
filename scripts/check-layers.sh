#!/usr/bin/env bash
# Architecture checks run by .ci/run: import layers (import-linter contracts in pyproject.toml) and types: mypy over
# both packages, and --strict over the pure core (the model, its translations, the builders and decide), where a
# missing annotation or an Any leaking out would hide a wrong pod spec or job script.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=operator .venv/bin/lint-imports
.venv/bin/mypy seamless_dask_runtime operator/seamless_dask_operator
PURE_CORE=(
  seamless_dask_runtime/model seamless_dask_runtime/launcher/jobqueue
  operator/seamless_dask_operator/decide operator/seamless_dask_operator/builders
  operator/seamless_dask_operator/resource.py operator/seamless_dask_operator/options.py
  operator/seamless_dask_operator/pod_policy.py operator/seamless_dask_operator/pod_problems.py
)
.venv/bin/mypy --strict "${PURE_CORE[@]}"
