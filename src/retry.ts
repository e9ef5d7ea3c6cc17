/**
 * Opt-in retries for transient failures: stalls, resets, 5xx answers,
 * proxy restarts. Never for what repeating cannot fix: digest mismatches,
 * 401, 404, policy rejections.
 */
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImageProxyError } from './errors.js';
import type { BlobStream, BlobTransfer } from './blobs/stream-kit.js';

/** How often to try an operation again after a retryable failure, and how long to wait between tries. */
export interface RetryPolicy {
  /** How many times to try in all (1 = no retry). */
  attempts: number;
  /**
   * Milliseconds to wait before retry n (1-based): a base doubled each time
   * (default 500 ms: 500, 1000, 2000, ... capped at 30 s), or a function.
   */
  backoff?: number | ((retry: number) => number);
}

/** What a retry listener learns. */
export interface RetryEvent {
  /** The attempt about to start (2 for the first retry). */
  attempt: number;
  /** The retryable failure of the attempt before. */
  error: Error;
  /** How long the retry waits before it starts, in milliseconds. */
  delayMs: number;
}

/** Whether an error is worth repeating the operation for. */
export function isRetryable(error: unknown): boolean {
  return error instanceof ImageProxyError && error.retryable;
}

export function backoffDelay(policy: RetryPolicy, retry: number): number {
  const { backoff = 500 } = policy;
  return typeof backoff === 'function' ? backoff(retry) : Math.min(backoff * 2 ** (retry - 1), 30_000);
}

/**
 * Runs `operation` until it succeeds, fails with an error that is not
 * retryable, or the attempts are used up. For blobs, make the operation the
 * whole transfer (fetch and consume): a retry starts the blob over.
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  operation: (attempt: number) => Promise<T>,
  onRetry?: (event: RetryEvent) => void,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (attempt >= policy.attempts || !isRetryable(error)) throw error;
      const delayMs = backoffDelay(policy, attempt);
      onRetry?.({ attempt: attempt + 1, error: error as Error, delayMs });
      await sleep(delayMs);
    }
  }
}

/**
 * A blob stream that re-fetches its blob after a retryable failure, but only
 * while it has emitted nothing: a consumer never sees bytes twice. Once bytes
 * have gone out, the error surfaces and {@link withRetry} around the whole
 * transfer is the way to start over. Emits `retry` with a {@link RetryEvent}.
 */
export class RetryingBlobStream extends Readable implements BlobStream {
  #inner: BlobStream;
  #emitted = 0;
  #attempt: number;

  /** `attempt`: the attempt that produced `first` (opening it may have been retried already). */
  constructor(
    first: BlobStream,
    private readonly reopen: () => Promise<BlobStream>,
    private readonly policy: RetryPolicy,
    attempt = 1,
  ) {
    super({ highWaterMark: first.readableHighWaterMark });
    this.#inner = first;
    this.#attempt = attempt;
    this.#attach(first);
  }

  get transfer(): BlobTransfer {
    return this.#inner.transfer;
  }
  get digest(): string {
    return this.#inner.digest;
  }
  get expectedSize(): number {
    return this.#inner.expectedSize;
  }
  get bytesReceived(): number {
    return this.#inner.bytesReceived;
  }

  override _read(): void {
    this.#inner.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#inner.destroy();
    callback(error);
  }

  #attach(inner: BlobStream): void {
    this.#inner = inner;
    inner.on('data', (chunk: Buffer) => {
      this.#emitted += chunk.length;
      if (!this.push(chunk)) inner.pause();
    });
    inner.once('end', () => this.push(null));
    inner.once('error', (error) => void this.#failed(error));
  }

  async #failed(error: Error): Promise<void> {
    if (this.destroyed) return;
    if (this.#emitted > 0 || this.#attempt >= this.policy.attempts || !isRetryable(error)) {
      this.destroy(error);
      return;
    }
    const delayMs = backoffDelay(this.policy, this.#attempt);
    this.#attempt++;
    this.emit('retry', { attempt: this.#attempt, error, delayMs } satisfies RetryEvent);
    await sleep(delayMs);
    if (this.destroyed) return;
    try {
      this.#attach(await this.reopen());
    } catch (reopenError) {
      await this.#failed(reopenError as Error);
    }
  }
}
