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
//    each test process gets its own TMPDIR, removed when it exits. Its path
//    is kept short (about 37 characters): podman refuses a run root of more
//    than 50, and test/serve.test.ts makes one under TMPDIR.
// 4. Processes and files left behind. A test process that Stryker kills
//    outright (a timeout) runs no exit hook, and the processes it started
//    live on (Stryker kills the test process, not its children). A watchdog
//    (reaper.cjs) beside each test process kills, once it has ended, the
//    processes it started that are still running, never another, and
//    removes its TMPDIR. Directories whose owner and watchdog are both gone
//    are removed by the next test process.
'use strict';
const { spawn } = require('node:child_process');
const { randomBytes } = require('node:crypto');
const { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { OWNER_TOKEN, WATCH, startTime, removeTree } = require('./reaper.cjs');

const CHILD_COVERAGE = 'CIP_MUTATION_CHILD_COVERAGE';
const PREFIX = 'cipm-';
const dryRun = process.env.STRYKER_DRY_RUN === 'true'; // set by the tap runner; coverage is read in the dry run only

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
  // A directory is named after its owner's pid and start time: its owner is
  // gone when no process has that pid with that start time (pids are reused).
  for (const name of readdirSync(base)) {
    const [, pid, start] = new RegExp(`^${PREFIX}(\\d+)-(\\d+)-`).exec(name) ?? [];
    if (pid && startTime(pid) !== Number(start)) removeTree(join(base, name));
  }
  // Lower case only: podman refuses references to paths with capitals, and
  // containers-storage.test.ts names paths under TMPDIR in references.
  const ownStart = startTime(process.pid);
  const root = join(base, `${PREFIX}${process.pid}-${ownStart}-${randomBytes(3).toString('hex')}`);
  mkdirSync(root);
  chmodSync(root, 0o1777); // like /tmp: the rootless test's user works under it too
  const coverageDir = join(root, 'coverage');
  const tmp = join(root, 't');
  mkdirSync(coverageDir);
  mkdirSync(tmp);
  chmodSync(tmp, 0o1777);
  process.env.TMPDIR = tmp;
  process.env[CHILD_COVERAGE] = coverageDir;
  // The watchdog (reaper.cjs). A shell starts it in the background and
  // exits, so it is no descendant of this process: Stryker ends a timed-out
  // run by killing the whole process tree of its worker (SIGKILL), and the
  // watchdog must outlive that. Its own environment has no token (it must
  // not find itself) and no hook.
  spawn('/bin/sh', ['-c', '"$0" "$1" &', process.execPath, join(__dirname, 'reaper.cjs')], {
    detached: true,
    stdio: 'ignore',
    env: { PATH: process.env.PATH, [WATCH]: JSON.stringify({ token: root, root, ownerPid: process.pid, ownerStart: ownStart }) },
  }).unref();
  process.env[OWNER_TOKEN] = root; // inherited by every process this one starts
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
