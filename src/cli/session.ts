/** Opening a proxy and an image for one command, closed on the way out. */
import { randomBytes } from 'node:crypto';
import { constants, createWriteStream, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, readlink, realpath, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import type { Meter } from './progress.js';
import { pipeline } from 'node:stream/promises';
import { ImageProxy, withRetry, type OpenedImage } from '../index.js';
import { proxyConfig, retryPolicy, UsageError, type GlobalValues } from './options.js';
import type { Progress } from './progress.js';

export async function withImage<T>(values: GlobalValues, reference: string, work: (proxy: ImageProxy, image: OpenedImage) => Promise<T>): Promise<T> {
  await using proxy = await ImageProxy.spawn(proxyConfig(values));
  await using image = await proxy.openImage(reference);
  return await work(proxy, image);
}

/**
 * Runs one blob transfer, from its start, as often as --retry allows;
 * each retry shows in the progress output.
 */
export function transferWithRetry(values: GlobalValues, progress: Progress, id: string, transfer: () => Promise<void>): Promise<void> {
  return withRetry(retryPolicy(values), transfer, (event) => progress.retry(id, event.attempt, event.error.message.split('\n')[0]!));
}

/** Writes to stdout and waits until it has been handed to the OS. */
export function writeStdout(data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(data, (error) => (error ? reject(error) : resolve())));
}

/**
 * Where `-o PATH` writes, from what PATH is now:
 *  - `replace`: a regular file or a new name. Written through a temporary name
 *    in the same directory and renamed into place on success, so a failed or
 *    unverified transfer leaves nothing behind; a replaced file keeps its mode.
 *  - `direct`: an existing FIFO or character device (`/dev/null`, a pipe a
 *    reader waits on). Written in place: no temporary name, no rename, so the
 *    node stays what it is. Bytes written before a failure stay written.
 * A symlink is resolved and its target judged the same way (a regular file
 * target is replaced, the link kept). Everything else is refused with a
 * UsageError naming PATH and what it is: a directory, a block device, a
 * socket, a dangling symlink.
 */
export type OutputTarget = { kind: 'replace'; path: string; mode?: number } | { kind: 'direct'; path: string };

const ACCEPTED = 'blob writes to a regular file (replaced atomically), a new name, a FIFO or a character device';

export async function outputTarget(path: string): Promise<OutputTarget> {
  let stats: Stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'replace', path };
    throw error;
  }
  if (!stats.isSymbolicLink()) {
    const target = judge(path, stats);
    if (typeof target === 'string') throw new UsageError(`-o ${path} is ${target}; ${ACCEPTED}`);
    return target;
  }
  let resolved: string;
  try {
    resolved = await realpath(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    throw new UsageError(`-o ${path} is a symlink to ${await readlink(path)}, which does not exist; give a name that does or is new`);
  }
  const target = judge(resolved, await lstat(resolved));
  if (typeof target === 'string') throw new UsageError(`-o ${path} is a symlink to ${resolved}, which is ${target}; ${ACCEPTED}`);
  return target;
}

/** The target for an existing node, or what it is when it is refused. */
function judge(path: string, stats: Stats): OutputTarget | string {
  if (stats.isFile()) return { kind: 'replace', path, mode: stats.mode & 0o777 }; // never setuid bits on new contents
  if (stats.isFIFO() || stats.isCharacterDevice()) return { kind: 'direct', path };
  if (stats.isDirectory()) return 'a directory';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Streams a verified blob to an {@link OutputTarget}. */
export async function writeOutput(target: OutputTarget, source: Readable, meter: Meter): Promise<void> {
  if (target.kind === 'direct') {
    // No O_CREAT, no O_TRUNC, no symlink: the node judged is the node written,
    // and if it was swapped meanwhile for something else, nothing is written.
    const handle = await open(target.path, constants.O_WRONLY | constants.O_NOCTTY | constants.O_NOFOLLOW);
    const stats = await handle.stat().catch(async (error: unknown) => {
      await handle.close();
      throw error;
    });
    if (!stats.isFIFO() && !stats.isCharacterDevice()) {
      await handle.close();
      throw new UsageError(`-o ${target.path} changed while blob ran and is no longer a FIFO or a character device`);
    }
    await pipeline(source, meter, handle.createWriteStream());
    return;
  }
  await mkdir(dirname(target.path), { recursive: true });
  const temporary = `${target.path}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await pipeline(source, meter, createWriteStream(temporary, { flags: 'wx' }));
    if (target.mode !== undefined) await chmod(temporary, target.mode);
    await rename(temporary, target.path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
