// Preloaded (--require) by Stryker's tap runner into each test file's process,
// before Stryker's own hook (see stryker.config.mjs), and through NODE_OPTIONS
// into every node process the tests start, such as the CLI (dist/cli/main.js).
//
// 1. Coverage of child processes. Stryker's hook reports the mutant coverage
//    of the test process only: a mutant reached only in a CLI child would look
//    uncovered and never run. Here each node child writes its coverage to a
//    directory on exit, and the test process adds it to its own before
//    Stryker's hook writes it out (exit listeners run in the order they were
//    added, and this file is loaded first). The active mutant needs no help:
//    the instrumented code reads it from the environment children inherit.
// 2. Files. Stryker makes its sandbox private (0700), but the rootless test of
//    containers-storage.test.ts runs the library there as another user: the
//    sandbox is opened to others (read and search).
// 3. Temporary files. A mutant that fails a test ends the file's process
//    early (bail), before its `after` hooks remove their OCI layouts and
//    registries' storage; over thousands of mutants that would fill /tmp. So
//    each test process gets its own TMPDIR, removed when it exits, and the
//    ones left by processes that were killed outright (timeouts) are removed
//    by the next test process.
'use strict';
const { execFileSync } = require('node:child_process');
const { randomBytes } = require('node:crypto');
const { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const CHILD_COVERAGE = 'CIP_MUTATION_CHILD_COVERAGE';
const PREFIX = 'cip-mutation-';
const dryRun = process.env.STRYKER_DRY_RUN === 'true'; // set by the tap runner; coverage is read in the dry run only

/**
 * Removes a test process's directory, never throwing: first the mounts a
 * bailed-out test left below it (containers/storage bind-mounts its overlay
 * directory), deepest first, as the tests' own cleanup does.
 */
function removeTree(dir) {
  try {
    const points = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[4]?.replace(/\\(\d{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8))))
      .filter((point) => point !== undefined && point.startsWith(`${dir}/`))
      .sort((a, b) => b.length - a.length);
    for (const point of points) execFileSync('umount', ['-l', point], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  } catch (error) {
    process.stderr.write(`tap-hook: could not remove ${dir}: ${error.message}\n`);
  }
}

if (process.env[CHILD_COVERAGE]) {
  // A node process started by a test.
  if (dryRun) {
    process.on('exit', () => {
      const counts = globalThis.__stryker__?.mutantCoverage?.static;
      if (counts && Object.keys(counts).length > 0) {
        writeFileSync(join(process.env[CHILD_COVERAGE], `${process.pid}.json`), JSON.stringify(counts));
      }
    });
  }
} else {
  // The test file's process.
  if (/[/]\.stryker-tmp[/]sandbox-[^/]+$/.test(process.cwd())) chmodSync(process.cwd(), 0o755);
  const base = tmpdir();
  for (const name of readdirSync(base)) {
    const pid = new RegExp(`^${PREFIX}(\\d+)-`).exec(name)?.[1];
    if (pid && !existsSync(`/proc/${pid}`)) removeTree(join(base, name));
  }
  // Lower case only: podman refuses references to paths with capitals, and
  // containers-storage.test.ts names paths under TMPDIR in references.
  const root = join(base, `${PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(root);
  chmodSync(root, 0o1777); // like /tmp: the rootless test's user works under it too
  const coverageDir = join(root, 'coverage');
  const tmp = join(root, 'tmp');
  mkdirSync(coverageDir);
  mkdirSync(tmp);
  chmodSync(tmp, 0o1777);
  process.env.TMPDIR = tmp;
  process.env[CHILD_COVERAGE] = coverageDir;
  const self = __filename.includes(' ') ? JSON.stringify(__filename) : __filename;
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --require ${self}`.trim();
  process.on('exit', () => {
    try {
      if (!dryRun) return;
      const ns = (globalThis.__stryker__ ??= {});
      const own = (ns.mutantCoverage ??= { static: {}, perTest: {} }).static;
      for (const file of readdirSync(coverageDir)) {
        const counts = JSON.parse(readFileSync(join(coverageDir, file), 'utf8'));
        for (const [id, count] of Object.entries(counts)) own[id] = (own[id] ?? 0) + count;
      }
    } finally {
      removeTree(root);
    }
  });
}
