#!/usr/bin/env bash
# `npm run mutate [-- STRYKER OPTIONS]`: mutation testing of src/ with StrykerJS
# (stryker.config.mjs), on one skopeo release: $SKOPEO, else the newest of the
# matrix. Incremental: results are kept in .cache/mutation/incremental.json,
# each run adds its --mutate scope to them, and a re-run only tests what
# changed (--force re-runs everything in scope). Examples:
#   npm run mutate -- --mutate src/protocol.ts
#   MUTATE_TESTS=unit/protocol,unit/fuzz npm run mutate -- --mutate src/protocol.ts
# Then: node scripts/mutation/scores.mjs   (the score per file of every chunk so far, as in MUTATION.md)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [[ -z ${SKOPEO:-} && -f .cache/skopeo-matrix/list ]]; then
  SKOPEO=$(tail -n 1 .cache/skopeo-matrix/list)
fi
export SKOPEO=${SKOPEO:-skopeo}
if [[ ! -f build/Release/seqpacket.node && ! -d prebuilds ]]; then
  echo "mutate: the native addon is not built; run scripts/setup.sh first" >&2
  exit 2
fi
# One run at a time on this machine (any worktree): two runs would each write
# the shared results back without the other's chunk. The lock is held by the
# Stryker process below (exec keeps fd 9 open) until it ends.
mkdir -p .cache/mutation
exec 9>.cache/mutation/lock
if ! flock -n 9; then
  echo "mutate: another npm run mutate is running on this machine (.cache/mutation/lock); wait for it to end" >&2
  exit 1
fi
echo "mutate: $("$SKOPEO" --version), tests: ${MUTATE_TESTS:-all but real-images}" >&2
npx tsc -p tsconfig.test.json # .build/test: the test files Stryker diffs for --incremental
exec nice -n "${MUTATE_NICE:-10}" npx stryker run "$@"
