#!/usr/bin/env bash
# Builds the prebuilt N-API addons that ship inside the npm package:
#   prebuilds/linux-x64/node.napi.glibc.node    (host gcc)
#   prebuilds/linux-arm64/node.napi.glibc.node  (Debian's aarch64-linux-gnu-gcc)
# and prebuilds/BUILDINFO.json: the sha256 of each file, of the sources, and
# the toolchain that made them.
#
# `npm run prebuilds` runs it; `npm pack` runs it first (prepack), so a
# package always carries binaries built from the sources it ships. The addon
# is C against N-API (plus uv.h, whose ABI libuv keeps stable), so one file per
# platform serves every Node version from 20 on. It is compiled against the
# headers of the Node running this script; run it with the oldest supported
# Node (20) so no newer API can slip in.
#
# Reproducible: the same sources, headers and toolchain give the same bytes,
# wherever the checkout lives. The sources are copied into a fresh directory
# of a fixed name under a fresh temporary directory, paths are mapped out
# with -ffile-prefix-map, there is no debug info and the binaries are
# stripped; ld's build-id is a hash of the contents.
#
# Usage: prebuild.sh [--if-changed] [OUT_DIR]   (default: prebuilds/ in the repository)
#        --if-changed: do nothing when OUT_DIR/BUILDINFO.json says it was built
#        from these sources with these Node headers
#        PREBUILD_ARCHS="x64"    only these (default: "x64 arm64")
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IF_CHANGED=0
if [[ ${1:-} == --if-changed ]]; then
  IF_CHANGED=1
  shift
fi
OUT=${1:-$ROOT/prebuilds}
ARCHS=${PREBUILD_ARCHS:-x64 arm64}

sources_sha=$(cd "$ROOT" && cat binding.gyp native/* | sha256sum | cut -d' ' -f1)
if ((IF_CHANGED)) && [[ -f $OUT/BUILDINFO.json ]] &&
  grep -q "\"sources_sha256\": \"$sources_sha\"" "$OUT/BUILDINFO.json" &&
  grep -q "\"node_headers\": \"$(node -p process.version)\"" "$OUT/BUILDINFO.json"; then
  cat "$OUT/BUILDINFO.json"
  exit 0
fi

NODE_PREFIX=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
if [[ ! -f $NODE_PREFIX/include/node/node_api.h ]]; then
  echo "prebuild: no Node headers under $NODE_PREFIX/include/node (the running Node's own)" >&2
  exit 1
fi
# node-gyp: the one npm ships (npm sets npm_config_node_gyp for its scripts).
NODE_GYP=${npm_config_node_gyp:-$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js}
if [[ ! -f $NODE_GYP ]]; then
  echo "prebuild: node-gyp not found at $NODE_GYP" >&2
  exit 1
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The headers alone, as node-gyp's --nodedir: pointing it at a prefix such as
# /usr would put that prefix's include/ (the host's libc) on a cross build's path.
NODEDIR=$WORK/node
mkdir -p "$NODEDIR/include"
cp -r "$NODE_PREFIX/include/node" "$NODEDIR/include/"

declare -A CROSS=([x64]="" [arm64]=aarch64-linux-gnu-)
declare -A TOOLS
for arch in $ARCHS; do
  prefix=${CROSS[$arch]?unknown arch $arch}
  for tool in gcc strip; do
    if ! command -v "${prefix}$tool" >/dev/null; then
      echo "prebuild: ${prefix}$tool is missing (scripts/setup.sh installs it)" >&2
      exit 1
    fi
  done
  TOOLS[$arch]="$(${prefix}gcc --version | head -1); $(${prefix}ld --version | head -1)"
done

mkdir -p "$OUT"
for arch in $ARCHS; do
  prefix=${CROSS[$arch]}
  src=$WORK/$arch/containers-image-proxy
  mkdir -p "$src"
  cp -r "$ROOT/binding.gyp" "$ROOT/native" "$src/"
  (
    cd "$src"
    export CC=${prefix}gcc CXX=${prefix}g++ LINK=${prefix}gcc AR=${prefix}ar
    export CC_host=gcc CXX_host=g++ LINK_host=gcc
    # Any path that reaches the object code (__FILE__) becomes relative.
    export CFLAGS="-ffile-prefix-map=$src=. -ffile-prefix-map=$NODEDIR=/node"
    export SOURCE_DATE_EPOCH=0
    node "$NODE_GYP" rebuild --arch="$arch" --nodedir="$NODEDIR" --release --silent >"$WORK/$arch.log" 2>&1 || {
      cat "$WORK/$arch.log" >&2
      exit 1
    }
    "${prefix}strip" --strip-unneeded -o "$WORK/$arch.node" build/Release/seqpacket.node
  )
  mkdir -p "$OUT/linux-$arch"
  # A new inode, renamed into place: a process that has the old file mapped keeps it intact.
  cp "$WORK/$arch.node" "$OUT/linux-$arch/.node.napi.glibc.node.new"
  mv "$OUT/linux-$arch/.node.napi.glibc.node.new" "$OUT/linux-$arch/node.napi.glibc.node"
done

# BUILDINFO.json: what was built, from what, with what.
{
  printf '{\n  "sources_sha256": "%s",\n' "$sources_sha"
  printf '  "node_headers": "%s",\n' "$(node -p process.version)"
  printf '  "node_gyp": "%s",\n' "$(node "$NODE_GYP" --version)"
  printf '  "files": {\n'
  first=1
  for arch in $ARCHS; do
    file=linux-$arch/node.napi.glibc.node
    ((first)) || printf ',\n'
    first=0
    printf '    "%s": { "sha256": "%s", "bytes": %d, "toolchain": "%s" }' \
      "$file" "$(sha256sum "$OUT/$file" | cut -d' ' -f1)" "$(stat -c %s "$OUT/$file")" "${TOOLS[$arch]//\"/}"
  done
  printf '\n  }\n}\n'
} >"$OUT/BUILDINFO.json"
cat "$OUT/BUILDINFO.json"
