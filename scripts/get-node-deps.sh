#!/usr/bin/env bash
# Debian packages the real single-node Kubernetes of ../shared/kube/node-up.sh and its
# build-image.sh need (root only; idempotent: installs only what is missing).
set -euo pipefail
packages=(containerd runc containernetworking-plugins iptables iproute2 zstd openssl curl buildah mmdebstrap)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "get-node-deps: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
