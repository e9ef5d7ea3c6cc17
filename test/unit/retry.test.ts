/** withRetry and isRetryable (the public retry API), without a proxy. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
