/**
 * Starting the skopeo child: finding the executable, wiring the socket and
 * secret fds, keeping a bounded stderr tail, and making sure the child dies
 * with us.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { SkopeoFeatures, SpawnPlan } from './config.js';
import { SpawnError } from './errors.js';
import { native } from './native.js';

/** How much of skopeo's stderr is kept for error messages. */
export const STDERR_TAIL_BYTES = 64 * 1024;

/** Finds an executable on PATH the way execvp would; null if there is none. */
export function findExecutable(command: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const candidates = command.includes('/') ? [command] : (env.PATH ?? '/usr/bin:/bin').split(delimiter).filter(Boolean).map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return null;
}

let setprivPath: string | null | undefined;
/** util-linux setpriv, which can give the child a parent-death signal. */
export function findSetpriv(): string | null {
  if (setprivPath === undefined) setprivPath = findExecutable('setpriv');
  return setprivPath;
}

const featureCache = new Map<string, Promise<SkopeoFeatures>>();
/** Reads `skopeo --help` output to learn which optional flags this build has. */
export function probeFeatures(prefix: readonly string[]): Promise<SkopeoFeatures> {
  const key = JSON.stringify(prefix);
  let probe = featureCache.get(key);
  if (!probe) {
    const run = promisify(execFile);
    const help = async (args: string[]): Promise<string> => {
      try {
        return (await run(prefix[0]!, [...prefix.slice(1), ...args], { timeout: 30_000 })).stdout;
      } catch {
        return '';
      }
    };
    probe = Promise.all([help(['--help']), help(['experimental-image-proxy', '--help'])]).then(([global, proxy]) => ({
      userAgentPrefix: global.includes('--user-agent-prefix'),
      decryptionKey: proxy.includes('--decryption-key'),
    }));
    featureCache.set(key, probe);
  }
  return probe;
}

/** Children still alive; killed when this process exits. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) child.kill('SIGTERM');
  });
}

export interface SpawnedChild {
  child: ChildProcess;
  /** Our end of the socketpair. */
  socketFd: number;
  /** The last {@link STDERR_TAIL_BYTES} of stderr. */
  stderr(): string;
  /** Resolves when the child has exited (and its stderr is read). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns the plan's argv with the socket as stdin and its secret files as fds 3, 4, ... */
export function spawnChild({ argv, program, secretFiles, debug }: SpawnPlan): SpawnedChild {
  if (!findExecutable(program)) {
    const hint =
      program === 'skopeo' || program.endsWith('/skopeo')
        ? 'install skopeo (Debian/Ubuntu: apt-get install skopeo; Fedora: dnf install skopeo) or set skopeoCommand to its path'
        : 'check skopeoCommand';
    throw new SpawnError(`cannot run ${program}: not found or not executable; ${hint}`, argv);
  }
  const executable = argv[0]!;
  const [ours, theirs] = native.socketPair();
  const inherited: number[] = [];
  let child: ChildProcess;
  try {
    for (const secret of secretFiles) inherited.push(native.createSecretFd(secret));
    child = spawn(executable, argv.slice(1), { stdio: [theirs, 'ignore', 'pipe', ...inherited] });
  } catch (error) {
    closeSync(ours);
    throw new SpawnError(`cannot run ${executable}: ${(error as Error).message}`, argv, { cause: error });
  } finally {
    closeSync(theirs);
    for (const fd of inherited) closeSync(fd);
  }

  let tail = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => {
    if (debug) process.stderr.write(text);
    tail = (tail + text).slice(-STDERR_TAIL_BYTES);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close' comes after the exit AND the end of stderr, so the tail is complete.
    child.once('close', (code, signal) => {
      liveChildren.delete(child);
      resolve({ code, signal });
    });
    child.once('error', (error) => {
      if (child.pid !== undefined) return; // a kill() failure, not a failed start
      liveChildren.delete(child);
      tail += `\n${error.message}`;
      resolve({ code: null, signal: null });
    });
  });
  liveChildren.add(child);
  installExitHook();
  // An idle proxy must not keep the caller's process alive.
  child.unref();
  (child.stderr as unknown as { unref(): void }).unref();
  return { child, socketFd: ours, stderr: () => tail, exited };
}
