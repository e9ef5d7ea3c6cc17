// What a test process leaves behind when it ends, above all when Stryker
// kills it outright (a timed-out mutant): the processes it started that are
// still running (Stryker kills the test process, not its children: a fake
// skopeo that ignores SIGTERM outlives it), and its private TMPDIR.
//
// tap-hook.cjs starts this file as a watchdog beside each test process (its
// "owner"): no descendant of it (a shell starts it in the background), in a
// session of its own, so neither a kill of the owner's process tree (what
// Stryker does on a timeout) nor of its process group reaches it. It checks
// ten times a second whether the owner is still there (its pid with its
// start time), however the owner ended. Then it kills every process that is
// still a descendant of the owner, removes the owner's directory, and exits.
//
// A descendant is recognised by its environment, not by the process tree:
// once the owner is dead its children belong to init, and pids are reused.
// The hook puts a token in the owner's environment (OWNER_TOKEN, naming the
// owner's private directory: its pid and random bytes), which every process
// it starts inherits; no other process has it. As a second guard a process
// is killed only if it started no earlier than the owner, and only if its
// start time is still the one read with its environment (the pid was not
// reused in between). A descendant started with an environment of its own
// (`env -i`, `runuser`) is not recognised, and not killed.
'use strict';
const { execFileSync } = require('node:child_process');
const { readdirSync, readFileSync, rmSync } = require('node:fs');

/** The environment variable every descendant of a test process carries. */
const OWNER_TOKEN = 'CIP_MUTATION_OWNER';
/** Set (to JSON: token, root, ownerPid, ownerStart) in the watchdog's environment. */
const WATCH = 'CIP_MUTATION_REAPER';

/** A process's start time (clock ticks after boot: field 22 of /proc/PID/stat), or null if there is no such process. */
function startTime(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from its closing one.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return null;
  }
}

/** The processes whose environment holds `OWNER_TOKEN=token` and that started at or after `since`: [{ pid, start }]. */
function carriers(token, since) {
  const entry = Buffer.from(`${OWNER_TOKEN}=${token}\0`);
  const found = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let environ;
    try {
      environ = readFileSync(`/proc/${pid}/environ`);
    } catch {
      continue; // gone, or not ours to read
    }
    const at = environ.indexOf(entry);
    if (at === -1 || (at > 0 && environ[at - 1] !== 0)) continue;
    const start = startTime(pid);
    if (start !== null && start >= since) found.push({ pid, start });
  }
  return found;
}

/**
 * Kills (SIGKILL) every process carrying `token` that started at or after
 * `since`, until none is left (a few rounds: one may have started another
 * while the first round ran). Returns the pids killed.
 */
function reap(token, since) {
  const killed = [];
  for (let round = 0; round < 10; round++) {
    const left = carriers(token, since);
    if (left.length === 0) break;
    for (const { pid, start } of left) {
      if (startTime(pid) !== start) continue; // exited (and maybe reused) since it was read
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        // exited in between
      }
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20); // let the kills land
  }
  return killed;
}

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

module.exports = { OWNER_TOKEN, WATCH, startTime, reap, removeTree };

if (require.main === module && process.env[WATCH]) {
  const { token, root, ownerPid, ownerStart } = JSON.parse(process.env[WATCH]);
  const timer = setInterval(() => {
    if (startTime(ownerPid) === ownerStart) return;
    clearInterval(timer);
    reap(token, ownerStart);
    removeTree(root);
  }, 100);
}
