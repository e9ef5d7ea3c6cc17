/**
 * The Stryker tap hook (scripts/mutation/tap-hook.cjs) cleans up after a test
 * process killed outright, as Stryker kills a timed-out mutant's: the
 * processes it started are killed (even those that ignore SIGTERM, like the
 * fake skopeo of the shutdown-hangs scenario), its private TMPDIR goes, and
 * no process it did not start is touched.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const HOOK = join(ROOT, 'scripts', 'mutation', 'tap-hook.cjs');
const reaper = createRequire(import.meta.url)(join(ROOT, 'scripts', 'mutation', 'reaper.cjs')) as {
  startTime(pid: number): number | null;
  reap(token: string, since: number): number[];
};

/** The environment of a test process as Stryker starts it: none of the hook's variables (a run under Stryker has them). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['NODE_OPTIONS', 'CIP_MUTATION_CHILD_COVERAGE', 'CIP_MUTATION_OWNER', 'STRYKER_DRY_RUN']) delete env[name];
  return { ...env, ...extra };
}

/** Running: the pid exists and is not a zombie (state Z, after the command name). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The pids of the processes below `pid` in the process tree now (as Stryker's tree kill collects them). */
function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const name of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(parent, [...(parents.get(parent) ?? []), Number(name)]);
    } catch {
      // gone
    }
  }
  const below = (of: number): number[] => (parents.get(of) ?? []).flatMap((child) => [child, ...below(child)]);
  return below(pid);
}

async function until(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((done) => setTimeout(done, 25));
  }
  return condition();
}

/** Reads the first line a process writes on stdout. */
async function firstLine(child: ChildProcess): Promise<string> {
  let text = '';
  child.stdout!.setEncoding('utf8');
  for await (const chunk of child.stdout!) {
    text += chunk;
    if (text.includes('\n')) break;
  }
  return text.split('\n')[0]!;
}

describe('mutation tap hook: a test process killed outright', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cip-hook-test-'));
  const started: ChildProcess[] = [];
  const pids: number[] = [];
  after(() => {
    for (const child of started) child.kill('SIGKILL');
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone, as it should be
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves no process it started running (one ignoring SIGTERM, and its child), its TMPDIR removed, and no other process touched', async () => {
    // The "test process": starts a shell that ignores SIGTERM and runs a
    // sleep in the background (a grandchild) and one in the foreground (the
    // shell's own pid, after exec), then reports the pids and its token.
    const owner = spawn(
      process.execPath,
      [
        '--require',
        HOOK,
        '-e',
        `const { spawn } = require('node:child_process');
         const shell = spawn('sh', ['-c', 'trap "" TERM; sleep 600 & echo $!; exec sleep 600'], { stdio: ['ignore', 'pipe', 'ignore'] });
         shell.stdout.once('data', (line) => {
           console.log(JSON.stringify({ child: shell.pid, grandchild: Number(String(line).trim()), token: process.env.CIP_MUTATION_OWNER, tmp: process.env.TMPDIR }));
         });
         setInterval(() => {}, 1000);`,
      ],
      { env: cleanEnv({ TMPDIR: dir }), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    started.push(owner);
    const { child, grandchild, token, tmp } = JSON.parse(await firstLine(owner)) as { child: number; grandchild: number; token: string; tmp: string };
    pids.push(child, grandchild);
    assert.ok(token.startsWith(join(dir, 'cipm-')), `the owner's token names its private directory: ${token}`);
    assert.ok(existsSync(tmp) && tmp.startsWith(token), 'the owner has its own TMPDIR under that directory');
    // Under /tmp, podman's run root (test/serve.test.ts) must fit in 50 characters: /tmp + this + /run-XXXXXX.
    assert.ok(tmp.length - dir.length <= 35, `the private TMPDIR adds at most 35 characters: ${tmp}`);

    // Bystanders: a process without the token, and one whose token only starts like the owner's.
    const plain = spawn('sleep', ['600'], { env: cleanEnv({}), stdio: 'ignore' });
    const nearMiss = spawn('sleep', ['600'], { env: cleanEnv({ CIP_MUTATION_OWNER: `${token}x` }), stdio: 'ignore' });
    started.push(plain, nearMiss);

    // The child really ignores SIGTERM (as the fake skopeo of shutdown-hangs does).
    process.kill(child, 'SIGTERM');
    await new Promise((done) => setTimeout(done, 100));
    assert.ok(alive(child), 'the child ignores SIGTERM');

    owner.kill('SIGKILL');
    await once(owner, 'exit');
    assert.ok(await until(() => !alive(child) && !alive(grandchild), 5000), 'the owner\'s child and grandchild are killed after it');
    assert.ok(await until(() => !existsSync(token), 5000), `the owner's directory is removed: ${readdirSync(dir).join(', ')}`);
    assert.ok(alive(plain.pid!), 'a process the owner did not start is left running');
    assert.ok(alive(nearMiss.pid!), 'a process with another token is left running');
  });

  it('a kill of its whole process tree (Stryker on a timeout) spares the watchdog, which removes its directory', async () => {
    const owner = spawn(
      process.execPath,
      ['--require', HOOK, '-e', `require('node:child_process').spawn('sleep', ['600'], { stdio: 'ignore' }); console.log(process.env.CIP_MUTATION_OWNER); setInterval(() => {}, 1000);`],
      { env: cleanEnv({ TMPDIR: dir }), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    started.push(owner);
    const token = await firstLine(owner);
    // Its tree once the shell that starts the watchdog has exited: the sleep alone.
    await until(() => descendants(owner.pid!).length === 1, 5000);
    const tree = descendants(owner.pid!);
    pids.push(...tree);
    for (const pid of [owner.pid!, ...tree]) process.kill(pid, 'SIGKILL');
    assert.ok(await until(() => !existsSync(token), 5000), `the owner's directory is removed: ${readdirSync(dir).join(', ')}`);
  });

  it('spares a process with the token that started before the owner (a reused pid cannot be its descendant)', async () => {
    const token = join(dir, `cipm-${randomBytes(3).toString('hex')}`);
    const carrier = spawn('sleep', ['600'], { env: cleanEnv({ CIP_MUTATION_OWNER: token }), stdio: 'ignore' });
    started.push(carrier);
    await until(() => reaper.startTime(carrier.pid!) !== null, 1000);
    const start = reaper.startTime(carrier.pid!)!;
    assert.deepEqual(reaper.reap(token, start + 1), [], 'an owner started after it: not its descendant');
    assert.ok(alive(carrier.pid!));
    assert.deepEqual(reaper.reap(token, start), [carrier.pid], 'an owner started no later: killed');
    assert.ok(await until(() => !alive(carrier.pid!), 5000));
  });
});
