// StrykerJS configuration for `npm run mutate` (scripts/mutate.sh); see MUTATION.md.
//
// Mutants are switched on in the TypeScript sources; the sandbox then compiles
// them the way the tests expect (`.build/` for the tests, `dist/` for the CLI
// the tests run: scripts/mutation/build.sh), and Stryker's tap runner runs
// each compiled test file as its own `node` process (node:test prints TAP).
// For Stryker a "test" is a whole test file.
//
// Which test files: the unit files and the integration files, except the
// real-image conformance file (4-5 minutes a run). Narrow a run with
// MUTATE_TESTS, a comma-separated list of test names (`unit/*`: every unit
// file), e.g.
//   MUTATE_TESTS=unit/protocol,proxy npm run mutate -- --mutate src/protocol.ts
import { readdirSync } from 'node:fs';

/** Not run for mutants unless named in MUTATE_TESTS. */
const SLOW = new Set(['real-images']);
/**
 * Fastest first (seconds per run on skopeo 1.22, measured 2026-12-05 at load
 * about 2): a mutant runs the files that cover it in this order and stops at
 * the first failure. Files not listed run last.
 */
const ORDER = [
  'unit/cli-options', 'unit/errors', 'unit/policy', 'unit/progress', // 0.3
  'unit/config', 'unit/protocol', 'unit/blob-requests', 'unit/images', 'unit/serve', 'unit/skopeo-messages', 'unit/storage', // 0.4
  'unit/extract-paths', 'unit/extract', 'unit/ordered-apply', 'unit/retry', 'unit/blob-responder', // 0.5 to 1 (blob-responder: 1 to 2)
  'unit/oci-layout', 'unit/fuzz', 'unit/replies', 'unit/gnu-tar', 'unit/decompress', 'unit/tar-reader', // 2 to 5
  'unit/blob-pipe', 'unit/blob-streams', // 6 to 7
  'versions', 'zstd', // 1 to 2
  'messages', 'signals', 'proxy', 'soak', // 4 to 5
  'blob-pipe', 'deadlines', 'faults', 'pull', // 8 to 11
  'serve', 'registry', 'containers-storage', 'fake-proxy', 'cli', // 14 to 23
  'images', 'stall', // 25 to 37
];
const names = (dir, prefix) =>
  readdirSync(dir)
    .filter((name) => name.endsWith('.test.ts'))
    .map((name) => prefix + name.slice(0, -'.test.ts'.length))
    .sort();
const rank = (name) => (ORDER.includes(name) ? ORDER.indexOf(name) : ORDER.length);
const all = [...names('test/unit', 'unit/'), ...names('test', '').filter((name) => !SLOW.has(name))].sort((a, b) => rank(a) - rank(b));
const expand = (name) => (name === 'unit/*' ? all.filter((each) => each.startsWith('unit/')) : [name]);
const chosen = process.env.MUTATE_TESTS
  ? [...new Set(process.env.MUTATE_TESTS.split(',').map((name) => name.trim()).filter(Boolean).flatMap(expand))].sort((a, b) => rank(a) - rank(b))
  : all;

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate: ['src/**/*.ts'],
  testRunner: 'tap',
  tap: {
    testFiles: chosen.map((name) => `.build/test/${name}.test.js`),
    // Our hook first (scripts/mutation/tap-hook.cjs): coverage of the node
    // processes a test starts, and a private TMPDIR per test process.
    nodeArgs: ['--require', './scripts/mutation/tap-hook.cjs', '--require', '{{hookFile}}', '--test-reporter=tap', '{{testFile}}'],
    forceBail: true,
  },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  buildCommand: 'bash scripts/mutation/build.sh',
  coverageAnalysis: 'perTest',
  // Results are kept in incrementalFile: a re-run only tests mutants whose
  // code or covering test files changed (--force: everything in scope), and
  // keeps the results of the files outside its --mutate scope, so chunks run
  // one after another add up to one result for src/. It lives in the cache
  // dir, which this machine keeps between sessions and worktrees (reports/
  // goes with the worktree); `node scripts/mutation/scores.mjs` reads it.
  incremental: true,
  incrementalFile: '.cache/mutation/incremental.json',
  // One test file at a time, one mutant at a time: the tests spawn skopeo,
  // registries and podman, and share the machine.
  concurrency: 1,
  // A mutant that makes a file hang is a timeout (counted as killed), found
  // after 1.5 x the file's normal time + 30 s.
  timeoutFactor: 1.5,
  timeoutMS: 30_000,
  dryRunTimeoutMinutes: 20,
  // .build/ is copied (Stryker reads the test files from it: scripts/mutate.sh
  // compiles it first) and then rebuilt in the sandbox from the mutated sources.
  ignorePatterns: ['/.cache', '/dist', '/reports', '/.stryker-tmp'],
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, reportMutants: true, reportScoreTable: true, skipFull: true },
  thresholds: { high: 85, low: 70, break: null },
};
