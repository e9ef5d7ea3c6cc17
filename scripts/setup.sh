#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine (as root) for this project: the system
# packages the tests and examples use, three skopeo releases (see
# skopeo-matrix.sh), the real-image fixtures (see real-images.sh), Node 22 and
# 24 (see node-versions.sh), the npm dependencies, and the prebuilt native
# addons (see prebuild.sh).
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
  [flock]=util-linux
  [setfattr]=attr
  [setcap]=libcap2-bin
  # bench: peak RSS of extract
  [/usr/bin/time]=time
  # the prebuilt addons (scripts/prebuild.sh): arm64 cross-compiled, and
  # loaded by an arm64 Node under qemu-user in test/package/prebuilds.test.ts
  [aarch64-linux-gnu-gcc]=gcc-aarch64-linux-gnu
  [qemu-aarch64]=qemu-user
  # test/package/prebuilds.test.ts reads the prebuilt ELF files
  [readelf]=binutils
)
# file -> Debian package that provides it (packages with no command)
declare -A NEEDED_FILES=(
  [/usr/aarch64-linux-gnu/include/stdio.h]=libc6-dev-arm64-cross
  [/usr/aarch64-linux-gnu/lib/libstdc++.so.6]=libstdc++6-arm64-cross
)
missing=()
for command in "${!NEEDED[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${NEEDED[$command]}")
done
for file in "${!NEEDED_FILES[@]}"; do
  [[ -e $file ]] || missing+=("${NEEDED_FILES[$file]}")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=$([[ $(id -u) == 0 ]] || echo sudo)
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bash scripts/skopeo-matrix.sh >/dev/null
# The real-image fixtures (minutes on a fresh machine, mostly debootstrap)
# build while the rest is set up; the wait below reports their failure.
bash scripts/real-images.sh >/dev/null &
real_images=$!
bash scripts/node-versions.sh >/dev/null

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-fund --no-audit
fi
# The addon as the npm package ships it: prebuilds/ (the tests load it from
# there, on every Node). Rebuilt only when the sources or the Node headers changed.
bash scripts/prebuild.sh --if-changed >/dev/null
# A build/ left by the old install script (node-gyp rebuild at npm ci) would
# be loaded before prebuilds/; `npm run build:addon` makes one again on purpose.
rm -rf build
npm run --silent build
wait "$real_images"
echo "setup: ready ($(skopeo --version); matrix: $(tr '\n' ' ' < .cache/skopeo-matrix/list))"
