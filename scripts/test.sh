#!/usr/bin/env bash
# Runs the unit tests once, then the integration suite once per skopeo
# release of the matrix (or only $SKOPEO when it is set).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
npm run --silent build   # the CLI tests run the built bin
npx tsc -p tsconfig.test.json

if [[ -n ${SKOPEO:-} ]]; then
  releases=("$SKOPEO")
elif [[ -f .cache/skopeo-matrix/list ]]; then
  mapfile -t releases < .cache/skopeo-matrix/list
else
  echo "test: no skopeo matrix; run scripts/setup.sh first (or set SKOPEO)" >&2
  exit 2
fi

status=0
echo "# unit tests"
node --test --test-reporter=spec .build/test/unit/*.test.js || status=1
for skopeo in "${releases[@]}"; do
  echo "# integration tests with $("$skopeo" --version)"
  # --test-timeout bounds each test file: the real-image conformance file
  # alone runs 4-5 minutes (42 extracts and pulls of real images); tests
  # that could hang have their own watchdogs.
  SKOPEO=$skopeo node --test --test-reporter=spec --test-concurrency=1 --test-timeout=900000 .build/test/*.test.js || status=1
done
echo "# must-fail mutants: each break of src/ must fail its test"
node scripts/mutation/must-fail.mjs || status=1
exit $status
