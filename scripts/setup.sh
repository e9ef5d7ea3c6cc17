#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine (as root) for this project: the system
# packages the tests and examples use, three skopeo releases (see
# skopeo-matrix.sh), the real-image fixtures (see real-images.sh), Node 22 and
# 24 (see node-versions.sh), and the npm dependencies with the native addon.
# Idempotent: a second run installs nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# command -> Debian package that provides it
declare -A NEEDED=(
  [skopeo]=skopeo
  [setpriv]=util-linux
  [openssl]=openssl
  [gpg]=gnupg
  [htpasswd]=apache2-utils
  [docker-registry]=docker-registry
  [script]=bsdutils
  [zstd]=zstd
  [make]=make
  [g++]=g++
  [python3]=python3
  # scripts/real-images.sh, and podman's store as a source
  [debootstrap]=debootstrap
  [umoci]=umoci
  [buildah]=buildah
  [podman]=podman
  # rootless podman for test/containers-storage.test.ts: subordinate id mapping
  [newuidmap]=uidmap
  [runuser]=util-linux
  [setfattr]=attr
  [setcap]=libcap2-bin
  # bench: peak RSS of extract
  [/usr/bin/time]=time
)
missing=()
for command in "${!NEEDED[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${NEEDED[$command]}")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=$([[ $(id -u) == 0 ]] || echo sudo)
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bash scripts/skopeo-matrix.sh >/dev/null
bash scripts/real-images.sh >/dev/null
bash scripts/node-versions.sh >/dev/null

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json || ! -f build/Release/seqpacket.node ]]; then
  npm ci --no-fund --no-audit
fi
npm run --silent build
echo "setup: ready ($(skopeo --version); matrix: $(tr '\n' ' ' < .cache/skopeo-matrix/list))"
