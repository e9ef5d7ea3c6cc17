#!/usr/bin/env bash
# The README's first command: inspect, list and extract the bundled example
# image (examples/hello-image, made by scripts/make-example-image.ts) with the
# CLI, no network needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cli() { echo "\$ containers-image-proxy $*" >&2; node dist/cli/main.js "$@"; }
IMAGE=oci:examples/hello-image:latest
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

cli inspect "$IMAGE" --config
cli layers "$IMAGE"
cli extract "$IMAGE" "$OUT/rootfs"
echo "extracted root filesystem:" >&2
(cd "$OUT/rootfs" && find . -mindepth 1 | sort)
echo "--- usr/share/hello/greeting.txt:" >&2
cat "$OUT/rootfs/usr/share/hello/greeting.txt"
