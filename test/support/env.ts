/** Shared test environment: which skopeo, temp dirs, leak probes. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImageProxyConfig } from '../../src/index.js';

/** `SKOPEO=/path/to/skopeo-wrapper` selects the release under test. */
export const SKOPEO = process.env.SKOPEO || 'skopeo';

/** The base config of every test: the selected skopeo. */
export function baseConfig(extra: ImageProxyConfig = {}): ImageProxyConfig {
  return process.env.SKOPEO ? { skopeoCommand: [process.env.SKOPEO], ...extra } : { ...extra };
}

/** Runs the selected skopeo (e.g. `copy`) synchronously. */
export function skopeo(...args: string[]): string {
  return execFileSync(SKOPEO, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * The Node executables besides this one that the tests run on
 * (scripts/node-versions.sh lists them in .cache/node/list); none before
 * setup has run.
 */
export function extraNodes(root: string): string[] {
  try {
    return readFileSync(join(root, '.cache', 'node', 'list'), 'utf8').split('\n').filter(Boolean).map((path) => join(root, path));
  } catch {
    return [];
  }
}

export function tempDir(prefix = 'cip-test-'): { path: string; [Symbol.dispose](): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

/** The fds this process has open, by number. */
export function openFds(): number[] {
  return readdirSync('/proc/self/fd').map(Number).sort((a, b) => a - b);
}

/**
 * What this process's open fds refer to: a resolved path, `pipe:[N]`,
 * `socket:[N]`, `anon_inode:[...]`. Tests that look for their own fds among
 * these are not disturbed by fds Node or an earlier test opens meanwhile, as
 * a bare count is (one once failed on Node 24, 23 fds for 22).
 */
function openFdTargets(): string[] {
  return openFds().flatMap((fd) => {
    try {
      return [readlinkSync(`/proc/self/fd/${fd}`)];
    } catch {
      return []; // closed between the listing and the readlink
    }
  });
}

/** The open fds on `path` or, for a directory, on anything under it. */
export function openFdsOn(path: string): string[] {
  const target = realpathSync(path); // /proc shows resolved paths
  return openFdTargets().filter((link) => link === target || link.startsWith(`${target}/`));
}

/** Pids of this process's direct children, zombies included (from /proc/PID/stat). */
export function childPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // After the parenthesised command name come: state, ppid, ...
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) pids.push(Number(entry));
    } catch {
      // it went away while we looked
    }
  }
  return pids;
}

/** Whether a process exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** Whether a process exists at all (zombies included). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * SIGSTOPs a process and waits until every one of its threads is stopped.
 * kill() only wakes one thread to start the group stop; until it gets a CPU
 * the others run on, and a loaded machine let skopeo answer requests sent
 * after kill() returned.
 */
export async function stopProcess(pid: number, timeoutMs = 5000): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  if (await eventually(() => runningThreads(pid).length === 0, timeoutMs)) return;
  throw new Error(`process ${pid} did not stop within ${timeoutMs} ms: threads ${runningThreads(pid).join(', ')} still run`);
}

/** Threads of `pid` neither stopped nor dead, as "tid:state" (from /proc/PID/task/TID/stat). */
function runningThreads(pid: number): string[] {
  const running: string[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // it exited while we looked
    }
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    if (!'TtZX'.includes(state)) running.push(`${tid}:${state}`);
  }
  return running;
}

/** Waits for a condition, polling; false on timeout. */
export async function eventually(condition: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return condition();
}

/** Fails a test that runs longer than `ms` instead of letting it hang the run. */
export function watchdog<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`watchdog: ${what} took more than ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** How many blob reader threads (native/blobreader.c names them `cip-blob-reader`) this process has. */
export function readerThreads(): number {
  let count = 0;
  for (const task of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim() === 'cip-blob-reader') count++;
    } catch {
      // the thread ended while we looked
    }
  }
  return count;
}
