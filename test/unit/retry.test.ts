/** withRetry, isRetryable and the retrying blob stream, without a proxy. */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { HIGH_WATER_MARK, type BlobStream } from '../../src/blobs/stream-kit.js';
import { RetryingBlobStream } from '../../src/retry.js';
import { BlobVerificationError, ImageProxyError, RequestError, StallError, isRetryable, withRetry, type RetryEvent } from '../../src/index.js';

const transient = (): StallError => new StallError('sha256:' + 'a'.repeat(64), 0, 10);
/** Thrown from onRetry to end withRetry before it sleeps. */
class Stop extends Error {}

describe('isRetryable', () => {
  it('is true only for library errors that say so', () => {
    assert.equal(isRetryable(transient()), true);
    assert.equal(isRetryable(new RequestError('GetBlob', 'fetching blob: received unexpected HTTP status: 503 Service Unavailable', 'retryable')), true);
    assert.equal(isRetryable(new RequestError('OpenImage', 'manifest unknown', 'other')), false);
    assert.equal(isRetryable(new BlobVerificationError('sha256:' + 'a'.repeat(64), 1, 2, 'size mismatch')), false);
    assert.equal(isRetryable(new ImageProxyError('plain')), false);
    // Anything that merely looks retryable is not ours to repeat.
    assert.equal(isRetryable(Object.assign(new Error('look-alike'), { retryable: true })), false);
    assert.equal(isRetryable({ retryable: true }), false);
    assert.equal(isRetryable(undefined), false);
  });
});

describe('withRetry', () => {
  it('returns the first success, passing the attempt number', async () => {
    const seen: number[] = [];
    const result = await withRetry({ attempts: 5, backoff: 1 }, async (attempt) => {
      seen.push(attempt);
      if (attempt < 3) throw transient();
      return `done on ${attempt}`;
    });
    assert.equal(result, 'done on 3');
    assert.deepEqual(seen, [1, 2, 3]);
  });

  it('uses up exactly `attempts` tries, then throws the last error', async () => {
    for (const attempts of [1, 2, 4]) {
      let tries = 0;
      const errors: Error[] = [];
      const error = await withRetry({ attempts, backoff: 1 }, async () => {
        tries++;
        const e = transient();
        errors.push(e);
        throw e;
      }).catch((e: unknown) => e);
      assert.equal(tries, attempts, `attempts: ${attempts}`);
      assert.equal(error, errors.at(-1), 'the last error, not the first');
    }
  });

  it('never repeats an error that is not retryable', async () => {
    let tries = 0;
    const failure = new BlobVerificationError('sha256:' + 'b'.repeat(64), 1, 2, 'digest mismatch');
    await assert.rejects(
      withRetry({ attempts: 5, backoff: 1 }, async () => {
        tries++;
        throw failure;
      }),
      (e: unknown) => e === failure,
    );
    assert.equal(tries, 1);
  });

  it('tells each retry: the attempt about to start, the error, the delay', async () => {
    const events: RetryEvent[] = [];
    const errors: Error[] = [];
    await withRetry(
      { attempts: 4, backoff: 1 },
      async (attempt) => {
        if (attempt === 4) return;
        const e = transient();
        errors.push(e);
        throw e;
      },
      (event) => events.push(event),
    );
    assert.deepEqual(events.map((e) => e.attempt), [2, 3, 4]);
    assert.deepEqual(events.map((e) => e.error), errors);
    assert.deepEqual(events.map((e) => e.delayMs), [1, 2, 4], 'the base doubles per retry');
  });

  /** The delays withRetry announces, ended by onRetry before any long sleep. */
  async function delays(policy: Parameters<typeof withRetry>[0], count: number): Promise<number[]> {
    const seen: number[] = [];
    await withRetry(
      policy,
      async () => {
        throw transient();
      },
      (event) => {
        seen.push(event.delayMs);
        if (seen.length === count) throw new Stop();
      },
    ).catch((e: unknown) => assert.ok(e instanceof Stop, String(e)));
    return seen;
  }

  it('waits 500 ms before the first retry by default, and never more than 30 s', async () => {
    assert.deepEqual(await delays({ attempts: 3 }, 1), [500]);
    assert.deepEqual(await delays({ attempts: 3, backoff: 20_000 }, 1), [20_000]);
    assert.deepEqual(await delays({ attempts: 3, backoff: 100_000 }, 1), [30_000]);
  });

  it('takes a backoff function, called with the retry number', async () => {
    const asked: number[] = [];
    const backoff = (retry: number): number => {
      asked.push(retry);
      return retry === 1 ? 0 : 45_000; // a function is not capped
    };
    assert.deepEqual(await delays({ attempts: 5, backoff }, 2), [0, 45_000]);
    assert.deepEqual(asked, [1, 2]);
  });

  it('really waits the announced delay', async () => {
    const started = Date.now();
    let tries = 0;
    await withRetry({ attempts: 2, backoff: 150 }, async () => {
      if (++tries === 1) throw transient();
    });
    assert.ok(Date.now() - started >= 140, `waited ${Date.now() - started} ms`);
  });
});

/**
 * A stand-in for one attempt's blob stream (the real ones read a proxy's
 * pipe): it emits `chunks`, then fails with `failure` or ends.
 */
class Attempt extends Readable implements BlobStream {
  readonly transfer = 'GetRawBlob' as const;
  readonly digest = 'sha256:' + 'c'.repeat(64);
  readonly expectedSize = 8;
  bytesReceived = 0;
  constructor(chunks: string[], failure?: Error) {
    super();
    for (const chunk of chunks) this.push(Buffer.from(chunk));
    if (failure) setImmediate(() => this.destroy(failure));
    else this.push(null);
  }
  override _read(): void {}
}

/** Reads a stream to its end or error: the bytes seen, and the error. */
async function drain(stream: Readable): Promise<{ text: string; error?: unknown }> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return { text: Buffer.concat(chunks).toString() };
  } catch (error) {
    return { text: Buffer.concat(chunks).toString(), error };
  }
}

describe('RetryingBlobStream (the stream getBlob returns with a retry policy)', () => {
  it('re-opens after a retryable failure before any byte, and delivers the next attempt whole', async () => {
    let reopened = 0;
    const stream = new RetryingBlobStream(new Attempt([], transient()), async () => (reopened++, new Attempt(['abcd', 'efgh'])), { attempts: 3, backoff: 1 });
    const events: RetryEvent[] = [];
    stream.on('retry', (event: RetryEvent) => events.push(event));
    assert.deepEqual(await drain(stream), { text: 'abcdefgh' });
    assert.equal(reopened, 1);
    assert.deepEqual(events.map((e) => e.attempt), [2]);
  });

  it('never starts over once bytes went out: the consumer would see them twice', async () => {
    let reopened = 0;
    const failure = transient();
    const stream = new RetryingBlobStream(new Attempt(['abcd'], failure), async () => (reopened++, new Attempt(['abcdefgh'])), { attempts: 3, backoff: 1 });
    stream.on('retry', () => assert.fail('no retry after bytes were emitted'));
    const { text, error } = await drain(stream);
    assert.equal(text, 'abcd');
    assert.equal(error, failure, 'the retryable error surfaces (withRetry around the transfer starts over)');
    assert.equal(reopened, 0);
  });

  it('uses up exactly `attempts` tries, the first included', async () => {
    for (const attempts of [1, 2, 3]) {
      let opened = 1;
      const failures: Error[] = [transient()];
      const stream = new RetryingBlobStream(new Attempt([], failures[0]), async () => {
        opened++;
        // One try too many: succeed, so that the stream ends and the count is checked.
        if (opened > attempts) return new Attempt(['abcdefgh']);
        const failure = transient();
        failures.push(failure);
        return new Attempt([], failure);
      }, { attempts, backoff: 1 });
      const { error } = await drain(stream);
      assert.equal(opened, attempts, `attempts: ${attempts}`);
      assert.equal(error, failures.at(-1), 'the last failure');
    }
  });

  it('a failed re-open counts as an attempt: retried while retryable, else the stream fails with it', async () => {
    const refused = new BlobVerificationError('sha256:' + 'd'.repeat(64), 1, 2, 'digest mismatch');
    const tries: string[] = [];
    const stream = new RetryingBlobStream(new Attempt([], transient()), async () => {
      tries.push('reopen');
      if (tries.length === 1) throw transient();
      throw refused;
    }, { attempts: 5, backoff: 1 });
    const { error } = await drain(stream);
    assert.equal(error, refused);
    assert.equal(tries.length, 2, 'the retryable re-open failure was retried, the other was not');
  });

  it('destroyed while it waits to retry: it never re-opens', async () => {
    let reopened = 0;
    const stream = new RetryingBlobStream(new Attempt([], transient()), async () => (reopened++, new Attempt(['abcdefgh'])), { attempts: 3, backoff: 50 });
    stream.on('error', () => {});
    await new Promise<void>((resolve) => stream.once('retry', () => resolve()));
    stream.destroy();
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(reopened, 0);
  });
});

/**
 * An attempt that produces `total` bytes on demand, 64 KiB per read, with the
 * high-water mark of the real blob streams: `produced` shows how far ahead of
 * its consumer it was pulled.
 */
class OnDemand extends Readable implements BlobStream {
  readonly transfer = 'GetBlob' as const;
  readonly digest = 'sha256:' + 'e'.repeat(64);
  bytesReceived = 0;
  produced = 0;
  constructor(readonly expectedSize: number) {
    super({ highWaterMark: HIGH_WATER_MARK });
  }
  override _read(): void {
    const n = Math.min(64 * 1024, this.expectedSize - this.produced);
    this.produced += n;
    this.push(n > 0 ? Buffer.alloc(n, 0x61) : null);
  }
}

/** An attempt that stays open until destroyed. */
class Open extends Readable implements BlobStream {
  readonly transfer = 'GetBlob' as const;
  readonly digest = 'sha256:' + 'f'.repeat(64);
  readonly expectedSize = 8;
  bytesReceived = 0;
  override _read(): void {}
}

describe('RetryingBlobStream backpressure and teardown', () => {
  it('buffers no more than the attempt would for a consumer that is behind, and resumes it when read', { timeout: 20_000 }, async () => {
    const total = 8 * 1024 * 1024;
    const inner = new OnDemand(total);
    const stream = new RetryingBlobStream(inner, async () => assert.fail('no re-open'), { attempts: 3, backoff: 1 });
    assert.equal(stream.readableHighWaterMark, HIGH_WATER_MARK, "the attempt's high-water mark, not Node's default 16 KiB");
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Nobody reads yet: the attempt is pulled until both buffers are full, no further.
    assert.ok(inner.produced <= 4 * HIGH_WATER_MARK, `pulled ${inner.produced} bytes ahead of a consumer that reads nothing`);
    const { text, error } = await drain(stream);
    assert.equal(error, undefined);
    assert.equal(text.length, total, 'read: the paused attempt resumes and the rest arrives');
  });

  it('destroyed in the tick its attempt fails: no retry is announced and nothing re-opens', async () => {
    let reopened = 0;
    const inner = new Open();
    const stream = new RetryingBlobStream(inner, async () => (reopened++, new Attempt(['abcdefgh'])), { attempts: 3, backoff: 1 });
    const retries: RetryEvent[] = [];
    stream.on('retry', (event: RetryEvent) => retries.push(event));
    stream.on('error', () => {});
    inner.destroy(transient()); // its 'error' comes on the next tick, after the consumer's destroy below
    stream.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(retries, []);
    assert.equal(reopened, 0);
  });
});
