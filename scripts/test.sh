#!/usr/bin/env bash
# `npm test`: the API reference, then the suites as jobs, TEST_JOBS at a time
# (default: the number of cores), each job's output printed whole when it ends:
# - the unit suite on every Node release (the machine's, then those
#   scripts/node-versions.sh installs);
# - the package tests (prebuilt addons; npm pack, install, use), first and
#   alone;
# - the whole integration suite once per skopeo release of the matrix on the
#   machine's Node, and once on each other Node release with one skopeo
#   release each (Node 22 with the oldest, Node 24 with the newest, so both
#   protocol paths meet a newer Node);
# - the must-fail mutants.
# SKOPEO=/path/to/skopeo: that release only, on the machine's Node only.
#
# The real-image conformance file is the heaviest (about 5 CPU-minutes: 42
# extracts and pulls of real images, each compared entry by entry): it runs
# whole on the newest skopeo, and a sample on the other runs
# (REAL_IMAGES_SCOPE=sample: the layered image from every source, the others
# from their OCI layout, extracts only; the skipped tests say so), which
# keeps CI under 30 minutes on 2 cores.
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
oldest=${releases[0]}
newest=${releases[-1]}

# The Node releases besides the machine's own (scripts/node-versions.sh).
extra_nodes=()
if [[ -z ${SKOPEO:-} ]]; then
  if [[ ! -f .cache/node/list ]]; then
    echo "test: no .cache/node/list; run scripts/setup.sh first (or set SKOPEO)" >&2
    exit 2
  fi
  mapfile -t extra_nodes < .cache/node/list
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/cip-test-logs.XXXXXX")
trap 'rm -rf "$logs"' EXIT
# rootless podman test edits /etc/subuid and /etc/subgid: one at a time.
SUBID_LOCK=$logs/subid.lock

# integration NODE SKOPEO SCOPE: every integration file, the rootless-podman
# file under the lock.
integration() {
  local node=$1 skopeo=$2 scope=$3 files=()
  for file in .build/test/*.test.js; do
    [[ $file == */containers-storage.test.js ]] || files+=("$file")
  done
  # --test-timeout bounds each file; tests that could hang have their own watchdogs.
  local run=("$node" --test --test-reporter=spec --test-concurrency=1 --test-timeout=900000)
  local status=0
  SKOPEO=$skopeo REAL_IMAGES_SCOPE=$scope "${run[@]}" "${files[@]}" || status=1
  SKOPEO=$skopeo flock "$SUBID_LOCK" "${run[@]}" .build/test/containers-storage.test.js || status=1
  return $status
}
unit() {
  "$1" --test --test-reporter=spec .build/test/unit/*.test.js
}

# The job list, longest first. Each: a title, then the command and its arguments.
titles=() commands=()
job() {
  titles+=("$1")
  shift
  commands+=("$(printf '%q ' "$@")")
}
describe() { echo "Node $("$1" --version) with $("$2" --version)"; }
job "integration tests on $(describe node "$newest"), real images: all" integration node "$newest" full
for skopeo in "${releases[@]}"; do
  [[ $skopeo == "$newest" ]] || job "integration tests on $(describe node "$skopeo"), real images: a sample" integration node "$skopeo" sample
done
for node in "${extra_nodes[@]}"; do
  case $("$node" --version) in
    v22.*) skopeo=$oldest ;;
    *) skopeo=$newest ;;
  esac
  job "integration tests on $(describe "$node" "$skopeo"), real images: a sample" integration "$node" "$skopeo" sample
done
job "must-fail mutants: each break of src/ must fail its test" node scripts/mutation/must-fail.mjs
for node in node "${extra_nodes[@]}"; do
  job "unit tests on Node $("$node" --version)" unit "$node"
done

# Alone, before the others: npm pack runs prepack, which rebuilds dist/ under
# the CLI that other tests run.
status=0
echo "# package tests (prebuilt addons; npm pack, install, use) with $("$newest" --version)"
SKOPEO=$newest node --test --test-reporter=spec --test-concurrency=1 --test-timeout=900000 .build/test/package/*.test.js || status=1

slots=${TEST_JOBS:-$(nproc)}
echo "# ${#titles[@]} jobs, $slots at a time; each job's output follows when it ends"
run_job() {
  local i=$1 start=$SECONDS status=0
  eval "${commands[$i]}" >"$logs/$i.log" 2>&1 || status=$?
  echo "$status" >"$logs/$i.status"
  local verdict=$([[ $status == 0 ]] && echo passed || echo "FAILED (exit $status)")
  # One job's output at a time, whole.
  flock "$logs/print.lock" bash -c 'echo "# ${1}"; cat "$2"; echo "# ${1}: ${3} in ${4} s"' _ \
    "${titles[$i]}" "$logs/$i.log" "$verdict" "$((SECONDS - start))"
}
for i in "${!titles[@]}"; do
  while (($(jobs -rp | wc -l) >= slots)); do wait -n || true; done
  run_job "$i" &
done
wait

echo "# summary"
((status == 0)) || echo "FAILED: package tests"
for i in "${!titles[@]}"; do
  result=$(cat "$logs/$i.status" 2>/dev/null || echo missing)
  [[ $result == 0 ]] && echo "ok: ${titles[$i]}" || { echo "FAILED: ${titles[$i]}"; status=1; }
done
exit $status
