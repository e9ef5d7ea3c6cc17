/** Opening a proxy and an image for one command, closed on the way out. */
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import type { Meter } from './progress.js';
import { pipeline } from 'node:stream/promises';
import { ImageProxy, withRetry, type OpenedImage } from '../index.js';
import { proxyConfig, retryPolicy, type GlobalValues } from './options.js';
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
 * Streams into `path` through a temporary name, renamed only on success, so a
 * failed or unverified transfer never leaves a partial file behind.
 */
export async function writeAtomically(path: string, source: Readable, meter: Meter): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.partial-${process.pid}`;
  try {
    await pipeline(source, meter, createWriteStream(temporary, { flags: 'wx' }));
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
