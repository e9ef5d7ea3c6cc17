import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigurationError, InvalidArgumentError } from '../../src/errors.js';
import { callPolicy, configPolicy, DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS, timer } from '../../src/policy.js';

describe('configPolicy', () => {
  it('defaults both timeouts to 60 s and no retry', () => {
    assert.deepEqual(configPolicy({}), { replyTimeoutMs: DEFAULT_TIMEOUT_MS, bodyIdleTimeoutMs: DEFAULT_TIMEOUT_MS, retry: undefined });
    assert.equal(DEFAULT_TIMEOUT_MS, 60_000);
  });

  it('takes stallTimeout as the shorthand for both, and each specific one over it', () => {
    assert.deepEqual(configPolicy({ stallTimeout: 5000 }), { replyTimeoutMs: 5000, bodyIdleTimeoutMs: 5000, retry: undefined });
    assert.deepEqual(configPolicy({ stallTimeout: 5000, replyTimeout: 7000 }), { replyTimeoutMs: 7000, bodyIdleTimeoutMs: 5000, retry: undefined });
    assert.deepEqual(configPolicy({ stallTimeout: 5000, bodyIdleTimeout: 0 }), { replyTimeoutMs: 5000, bodyIdleTimeoutMs: 0, retry: undefined });
  });

  it('maps Infinity and 0 to never (0), and accepts the largest timer Node honours', () => {
    assert.equal(configPolicy({ replyTimeout: Infinity }).replyTimeoutMs, 0);
    assert.equal(configPolicy({ bodyIdleTimeout: 0 }).bodyIdleTimeoutMs, 0);
    assert.equal(configPolicy({ replyTimeout: MAX_TIMEOUT_MS }).replyTimeoutMs, 2 ** 31 - 1);
  });

  for (const value of [2 ** 31, 1e10, Number.NaN, -1, -Infinity, 0.5, '10', null]) {
    it(`refuses ${String(value)} with a ConfigurationError naming the option`, () => {
      assert.throws(() => configPolicy({ bodyIdleTimeout: value as number }), (error: unknown) => {
        assert.ok(error instanceof ConfigurationError);
        assert.match(error.message, /^bodyIdleTimeout must be a whole number of milliseconds from 0 to 2147483647 \(0 or Infinity: never\), got /);
        return true;
      });
    });
  }

  it('validates retry', () => {
    assert.deepEqual(configPolicy({ retry: { attempts: 3, backoff: 10 } }).retry, { attempts: 3, backoff: 10 });
    assert.throws(() => configPolicy({ retry: { attempts: 0 } }), /^ConfigurationError: retry.attempts must be/);
    assert.throws(() => configPolicy({ retry: { attempts: 2.5 } }), /retry.attempts/);
    assert.throws(() => configPolicy({ retry: { attempts: 2, backoff: -1 } }), /^ConfigurationError: retry.backoff must be/);
    assert.throws(() => configPolicy({ retry: { attempts: 2, backoff: Number.NaN } }), /retry.backoff/);
    assert.throws(() => configPolicy({ retry: null as never }), /retry.attempts/);
    // Not an object, even one that carries attempts.
    assert.throws(() => configPolicy({ retry: Object.assign(() => 0, { attempts: 2 }) as never }), /^ConfigurationError: retry.attempts must be/);
  });

  it('accepts a backoff of 0 and a backoff function', () => {
    assert.deepEqual(configPolicy({ retry: { attempts: 2, backoff: 0 } }).retry, { attempts: 2, backoff: 0 });
    const backoff = (retry: number): number => retry * 10;
    assert.equal(configPolicy({ retry: { attempts: 2, backoff } }).retry?.backoff, backoff);
  });

  it('names stallTimeout when it is the bad one', () => {
    assert.throws(() => configPolicy({ stallTimeout: -1 }), /^ConfigurationError: stallTimeout must be a whole number of milliseconds/);
  });
});

describe('callPolicy', () => {
  const base = configPolicy({ stallTimeout: 9000, retry: { attempts: 2 } });

  it('returns the base itself when the call sets nothing', () => {
    assert.equal(callPolicy(base, {}), base);
  });

  it("lays the call's options over the base", () => {
    assert.deepEqual(callPolicy(base, { bodyIdleTimeout: 100 }), { replyTimeoutMs: 9000, bodyIdleTimeoutMs: 100, retry: { attempts: 2 } });
    assert.deepEqual(callPolicy(base, { stallTimeout: 50 }), { replyTimeoutMs: 50, bodyIdleTimeoutMs: 50, retry: { attempts: 2 } });
    assert.deepEqual(callPolicy(base, { retry: { attempts: 1 } }).retry, { attempts: 1 });
  });

  it('refuses bad values with InvalidArgumentError', () => {
    assert.throws(() => callPolicy(base, { replyTimeout: Number.NaN }), (error: unknown) => error instanceof InvalidArgumentError && /^replyTimeout must be/.test(error.message));
    assert.throws(() => callPolicy(base, { retry: { attempts: -1 } }), InvalidArgumentError);
  });
});

describe('timer', () => {
  it('arms nothing for 0', () => {
    assert.equal(timer(0, () => assert.fail('fired')), undefined);
  });

  it('fires once after the delay, unref-ed', async () => {
    let fired = 0;
    const handle = timer(5, () => fired++);
    assert.ok(handle && !handle.hasRef());
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(fired, 1);
  });
});
