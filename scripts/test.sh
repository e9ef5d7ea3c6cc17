#!/usr/bin/env bash
# Runs the unit tests on every Node release (the machine's own, then those
# scripts/node-versions.sh installs), then the integration suite once per
# skopeo release of the matrix on the machine's Node (or only $SKOPEO, and only
# the machine's Node, when SKOPEO is set).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
npm run --silent build   # the CLI tests run the built bin
npx tsc -p tsconfig.test.json
# The API reference: TypeDoc fails on any warning, an undocumented public symbol included.
echo "# API reference (npm run docs: TypeDoc into docs/api, warnings are errors)"
npm run --silent docs

if [[ -n ${SKOPEO:-} ]]; then
  releases=("$SKOPEO")
elif [[ -f .cache/skopeo-matrix/list ]]; then
  mapfile -t releases < .cache/skopeo-matrix/list
else
  echo "test: no skopeo matrix; run scripts/setup.sh first (or set SKOPEO)" >&2
  exit 2
fi

# The Node releases besides the machine's own (scripts/node-versions.sh):
# the full run (SKOPEO unset) tests on each of them too.
extra_nodes=()
if [[ -z ${SKOPEO:-} ]]; then
  if [[ ! -f .cache/node/list ]]; then
    echo "test: no .cache/node/list; run scripts/setup.sh first (or set SKOPEO)" >&2
    exit 2
  fi
  mapfile -t extra_nodes < .cache/node/list
fi

status=0
for node in node "${extra_nodes[@]}"; do
  echo "# unit tests on Node $("$node" --version)"
  "$node" --test --test-reporter=spec .build/test/unit/*.test.js || status=1
done
newest=${releases[-1]}
echo "# package tests (prebuilt addons; npm pack, install, use) with $("$newest" --version)"
SKOPEO=$newest node --test --test-reporter=spec --test-concurrency=1 --test-timeout=900000 .build/test/package/*.test.js || status=1
for skopeo in "${releases[@]}"; do
  echo "# integration tests on Node $(node --version) with $("$skopeo" --version)"
  # --test-timeout bounds each test file: the real-image conformance file
  # alone runs 4-5 minutes (42 extracts and pulls of real images); tests
  # that could hang have their own watchdogs.
  SKOPEO=$skopeo node --test --test-reporter=spec --test-concurrency=1 --test-timeout=900000 .build/test/*.test.js || status=1
done
# On the other Nodes, with the newest skopeo: the integration files that run
# what differs between Node releases, in about a minute each: the addon and
# the transport over it (proxy; fake-proxy: packets, fds, truncation; faults:
# child death, resets, backpressure; deadlines: timers and aborts), streams into the OCI layout writer
# (pull), decompression (zstd: zstd:chunked through node:zlib, extracted by
# the CLI) and leak probes (soak). The package tests above already ran the
# packed library and the CLI's extract on each Node. Left to the machine's
# Node, for CI's 30-minute budget: the real-image conformance file (4-7
# minutes a run: the same extract and pull code on bigger images), cli and
# stall (30 s each: the CLI's options and progress, timer watchdogs),
# containers-storage, registry auth/TLS and skopeo version gates (skopeo's
# side rather than Node's).
EXTRA_NODE_FILES=(proxy fake-proxy faults deadlines pull zstd soak)
EXTRA_NODE_FILES=("${EXTRA_NODE_FILES[@]/%/.test.js}")
for node in "${extra_nodes[@]}"; do
  echo "# integration tests on Node $("$node" --version) with $("$newest" --version): ${EXTRA_NODE_FILES[*]}"
  SKOPEO=$newest "$node" --test --test-reporter=spec --test-concurrency=1 --test-timeout=900000 \
    "${EXTRA_NODE_FILES[@]/#/.build/test/}" || status=1
done
echo "# must-fail mutants: each break of src/ must fail its test"
node scripts/mutation/must-fail.mjs || status=1
exit $status
