/**
 * What {@link pullImage} and {@link extractImage} share: their common
 * options, the proxy and image they open (and always close), the pool of
 * concurrent blob fetches, and one blob's transfer with its retries and
 * events. Everything above the blob (layouts, root filesystems) is theirs.
 */
import type { ImageProxyConfig } from './config.js';
import { InvalidArgumentError } from './errors.js';
import { ProgressReporter, type ImageBlob, type ProgressOptions } from './image-events.js';
import type { OpenedImage } from './images.js';
import type { BlobStep } from './oci-layout.js';
import { ImageProxy } from './proxy.js';
import type { BlobStream } from './blobs/index.js';
import { withRetry, type RetryPolicy } from './retry.js';

/** Where an image comes from: a running proxy (left running), or the config of one to spawn for this call (closed after). */
export type ImageSource = ImageProxy | ImageProxyConfig;

/** The options {@link pullImage} and {@link extractImage} share. */
export interface ImageOptions extends ProgressOptions {
  /**
   * Blobs fetched at a time, largest first (default 4). Every fetched blob is
   * read as it arrives, so on proxies older than 0.2.8 (GetBlob, whose
   * FinishPipe holds the proxy) parallel streams still never wait on each other.
   * For `extractImage` a layer keeps its slot until it is applied, so at
   * most `jobs` layers are ever spooled.
   */
  jobs?: number;
  /** Stops the call: transfers are abandoned, temporary files removed, the proxy stays usable. */
  signal?: AbortSignal;
  /**
   * Retries of each blob after a retryable failure (stall, reset, 5xx,
   * proxy restart); a retry starts the blob over and shows as `blob-retry`.
   * Default: none (a proxy's own `retry` still re-opens a blob that failed
   * before its first byte).
   */
  retry?: RetryPolicy;
  /** Ms a blob may stay silent before it fails with StallError (and is retried). Default: the proxy's. */
  stallTimeout?: number;
}

/** The default of {@link ImageOptions.jobs}. */
export const DEFAULT_JOBS = 4;

/** The image's options, checked once. @internal */
export interface ImageCall {
  jobs: number;
  signal: AbortSignal | undefined;
  retry: RetryPolicy;
  stallTimeout: number | undefined;
  reporter: ProgressReporter;
}

/** @internal Checks the shared options; throws InvalidArgumentError naming the bad one. */
export function imageCall(options: ImageOptions): ImageCall {
  const jobs = options.jobs ?? DEFAULT_JOBS;
  if (!Number.isSafeInteger(jobs) || jobs < 1) throw new InvalidArgumentError(`jobs must be a whole number, 1 or more, got ${String(options.jobs)}`);
  const interval = options.progressInterval;
  if (interval !== undefined && !(Number.isFinite(interval) && interval >= 0)) {
    throw new InvalidArgumentError(`progressInterval must be milliseconds (a finite number, 0 or more), got ${String(interval)}`);
  }
  const retry = options.retry;
  if (retry !== undefined && (typeof retry !== 'object' || retry === null || !Number.isSafeInteger(retry.attempts) || retry.attempts < 1)) {
    throw new InvalidArgumentError(`retry.attempts must be a whole number of attempts, 1 or more (1: no retry), got ${String(retry?.attempts)}`);
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw new InvalidArgumentError(`onProgress must be a function, got ${typeof options.onProgress}`);
  }
  return {
    jobs,
    signal: options.signal,
    retry: options.retry ?? { attempts: 1 },
    stallTimeout: options.stallTimeout,
    reporter: new ProgressReporter(options),
  };
}

/**
 * Runs `work` on `reference` opened on `source`: a proxy spawned here is
 * closed after, the image always.
 */
export async function withSourceImage<T>(
  source: ImageSource,
  reference: string,
  signal: AbortSignal | undefined,
  work: (proxy: ImageProxy, image: OpenedImage) => Promise<T>,
): Promise<T> {
  if (typeof reference !== 'string' || reference === '') throw new InvalidArgumentError(`reference must be an image reference such as "docker://host/repo:tag", got ${String(reference)}`);
  signal?.throwIfAborted();
  if (source instanceof ImageProxy) {
    await using image = await source.openImage(reference, { signal });
    return await work(source, image);
  }
  await using proxy = await ImageProxy.spawn(source ?? {});
  await using image = await proxy.openImage(reference, { signal });
  return await work(proxy, image);
}

/**
 * Runs `work` for `count` items, at most `jobs` at a time, each taken by
 * `next()` (which returns an item not yet taken, or undefined when none is
 * left). The first failure stops new work and aborts the rest (through the
 * signal `work` gets); it is thrown once everything has settled, so nothing
 * is left running.
 */
export async function runJobs(
  count: number,
  jobs: number,
  signal: AbortSignal | undefined,
  next: () => number | undefined,
  work: (item: number, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (!failure && !controller.signal.aborted) {
      const item = next();
      if (item === undefined) return;
      try {
        await work(item, controller.signal);
      } catch (error) {
        if (!failure) {
          failure = { error };
          controller.abort(error);
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, count)) }, worker));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (failure) throw failure.error;
  if (controller.signal.aborted) throw controller.signal.reason;
}

/** Indexes of `blobs` by size, largest first (unknown sizes last): the longest transfer starts first. */
export function largestFirst(blobs: ReadonlyArray<{ size: number }>): number[] {
  return blobs.map((_, i) => i).sort((a, b) => blobs[b]!.size - blobs[a]!.size || a - b);
}

/**
 * Fetches one blob and hands its verified stream and a progress meter to
 * `consume`, which must read it to the end; the whole of it is retried per
 * the call's policy (a retry starts over, so `consume` must be repeatable).
 * Emits blob-start, blob-retry and blob-done. Returns the bytes received.
 */
export async function transferBlob(
  proxy: ImageProxy,
  image: OpenedImage,
  blob: ImageBlob,
  call: ImageCall,
  signal: AbortSignal,
  consume: (stream: BlobStream, meter: BlobStep) => Promise<void>,
): Promise<number> {
  return withRetry(
    call.retry,
    async (attempt) => {
      const progress = call.reporter.attempt(blob, attempt);
      const stream = await proxy.getBlob(image, blob.digest, blob.size, { signal, ...(call.stallTimeout !== undefined && { stallTimeout: call.stallTimeout }) });
      // Until `consume` pipes it (it may await first, e.g. a mkdir), an abort
      // must not become an unhandled 'error': the pipe still sees it.
      stream.on('error', () => {});
      try {
        await consume(stream, progress.meter);
      } finally {
        stream.destroy(); // a no-op once it ended; frees it when consume failed early
      }
      progress.done();
      return stream.bytesReceived;
    },
    (event) => call.reporter.retry(blob, event),
  );
}
