#!/usr/bin/env bash
# `npm run mutate [-- STRYKER OPTIONS]`: mutation testing of src/ with StrykerJS
# (stryker.config.mjs), on one skopeo release: $SKOPEO, else the newest of the
# matrix. Incremental: results are kept in reports/mutation/ and a re-run
# only tests what changed (--force re-runs everything in scope). Examples:
#   npm run mutate -- --mutate src/protocol.ts
#   MUTATE_TESTS=unit/protocol,unit/fuzz npm run mutate -- --mutate src/protocol.ts
# Then: node scripts/mutation/scores.mjs   (the score per file, as in MUTATION.md)
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
echo "mutate: $("$SKOPEO" --version), tests: ${MUTATE_TESTS:-all but real-images}" >&2
npx tsc -p tsconfig.test.json # .build/test: the test files Stryker diffs for --incremental
exec nice -n "${MUTATE_NICE:-10}" npx stryker run "$@"
