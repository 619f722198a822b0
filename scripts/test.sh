#!/usr/bin/env bash
# Set up .venv with everything the tests need and run them with every real part
# this machine can run: a real kube-apiserver (../shared/kube/up.sh), a real
# Slurm (Debian packages, root only), a real node that runs pods (../shared/kube/node-up.sh,
# root only; images built from our Dockerfiles), real helm/kubectl, real Dask processes.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
# seamless-dask (a test dependency) installs a console script of the same name as ours:
# reinstall ours last so `seamless-dask-wrapper` on PATH is this project's.
.venv/bin/python -m pip install -q --no-deps --force-reinstall -e .
bash scripts/get-k8s-tools.sh .venv/bin >/dev/null
export PATH="$PWD/.venv/bin:$PATH"
# The kubectl and helm the tests run: found, helm new enough, kubectl within one minor of a given cluster
# (the clusters the tests start themselves are checked by their fixtures).
if [ -n "${KUBECONFIG:-}" ]; then .venv/bin/python scripts/check-k8s-tools.py
else .venv/bin/python scripts/check-k8s-tools.py --client; fi

if [ -z "${SDO_KUBE_UP:-}" ] && [ -z "${KUBECONFIG:-}" ] && [ -x ../shared/kube/up.sh ]; then
  SDO_KUBE_UP="$(cd ../shared/kube && pwd)/up.sh"
  export SDO_KUBE_UP
fi
if [ -z "${SDO_SLURM:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export SDO_SLURM=1
fi
# Pods that really run (tests/e2e): the real node of ../shared/kube/node-up.sh, as root. Elsewhere the
# same suite runs on kind when kind and Docker are there, and skips with its reason otherwise.
if [ -z "${SDO_NODE_UP:-}" ] && [ "$(id -u)" = 0 ] && [ -x ../shared/kube/node-up.sh ] && command -v apt-get >/dev/null; then
  bash scripts/get-node-deps.sh
  SDO_NODE_UP="$(cd ../shared/kube && pwd)/node-up.sh"
  export SDO_NODE_UP
fi
echo "control plane: ${SDO_KUBE_UP:-${KUBECONFIG:-none (Kubernetes tests skip)}}; slurm: ${SDO_SLURM:-off (Slurm tests skip)};" \
  "node for pods: ${SDO_NODE_UP:-${KNODE_DIR:-none (e2e runs on kind if present, else skips)}}"
exec .venv/bin/python -m pytest "$@"
