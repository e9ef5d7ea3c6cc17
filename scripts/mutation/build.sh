#!/usr/bin/env bash
# Stryker's buildCommand (run in its sandbox, on the instrumented sources):
# the tests' build (.build/) and the package build (dist/, the CLI the tests run).
set -euo pipefail
npx tsc -p tsconfig.test.json
npx tsc -p tsconfig.json
