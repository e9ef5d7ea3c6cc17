#!/usr/bin/env bash
# Installs the Node releases the tests run on besides the machine's own (20):
# the current LTS lines 22 and 24 for linux-x64, and a linux-arm64 Node 20 that
# runs the arm64 prebuilt addon under qemu-user. Each comes from the npm
# registry's node-linux-<arch> package (the `node` package's per-architecture
# binaries), fetched with `npm pack`, checked against the sha512 pinned here,
# and unpacked into .cache/node/<arch>-<version>/. Nothing else is downloaded.
#
# Writes .cache/node/list: the extra linux-x64 `node` executables, one a line
# (relative to the repository), for scripts/test.sh. Idempotent: an installed release is not fetched again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$ROOT/.cache/node

# arch version sha512 (the package tarball's, as the registry's integrity field)
RELEASES=(
  "x64 22.23.3 sha512-qHnz5tFsHoj/WM+uRENVjWONi5hVvmwrgq8A4V76KpuVNAc4+jwK8x4gwbobE9BtHNg/AKR2583eYorLF/c7ng=="
  "x64 24.21.0 sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q=="
  "arm64 20.20.2 sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg=="
)

mkdir -p "$CACHE"
list=()
for release in "${RELEASES[@]}"; do
  read -r arch version integrity <<<"$release"
  dir=$CACHE/$arch-$version
  if [[ ! -x $dir/bin/node ]]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "node-linux-$arch@$version" >/dev/null)
    tarball=$tmp/node-linux-$arch-$version.tgz
    actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
    if [[ $actual != "$integrity" ]]; then
      echo "node-versions: node-linux-$arch@$version has $actual, expected $integrity" >&2
      rm -rf "$tmp"
      exit 1
    fi
    mkdir -p "$tmp/unpacked"
    tar -xzf "$tarball" -C "$tmp/unpacked" --strip-components=1
    rm -rf "$dir"
    mv "$tmp/unpacked" "$dir"
    rm -rf "$tmp"
  fi
  [[ $arch == x64 ]] && list+=(".cache/node/$arch-$version/bin/node")
  echo "$arch $("$dir/bin/node" --version 2>/dev/null || echo "v$version (not runnable here)") $dir/bin/node"
done
printf '%s\n' "${list[@]}" >"$CACHE/list"
