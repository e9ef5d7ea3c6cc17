/**
 * The call policy: how long a request may wait for its reply, how long a blob
 * may stay silent while read, and how blob fetches are retried. Validated once
 * (the config at spawn, each call's overrides when the call is made) and
 * resolved into one value the rest of the library only reads.
 */
import { ConfigurationError, InvalidArgumentError, type ImageProxyError } from './errors.js';
import type { RetryPolicy } from './retry.js';

/** Default of both timeouts, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 60_000;

/** The longest delay Node's timers honour; longer ones fire after 1 ms. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** The timeouts and retries of one call, resolved; a timeout of 0 means "never". */
export interface CallPolicy {
  /** How long a request may wait for its reply once sent. */
  readonly replyTimeoutMs: number;
  /** How long a blob may receive nothing while it is being read. */
  readonly bodyIdleTimeoutMs: number;
  readonly retry: RetryPolicy | undefined;
}

/** The policy options a config or a call may set. */
export interface PolicyOptions {
  /**
   * Milliseconds a request may wait for its reply once sent (default 60 000;
   * 0 or `Infinity`: forever). An unanswered request blocks every later one,
   * so when it expires the proxy replaces skopeo and re-opens held images.
   */
  replyTimeout?: number;
  /**
   * Milliseconds a blob stream may receive nothing while it is being read,
   * before it fails with StallError (default 60 000; 0 or `Infinity`: never).
   */
  bodyIdleTimeout?: number;
  /** Shorthand for both timeouts; each of the two, when given, wins over it. */
  stallTimeout?: number;
  /** Retry policy of blob fetches (see {@link RetryPolicy}); none by default. */
  retry?: RetryPolicy;
}

type ErrorClass = new (message: string) => ImageProxyError;

/** The config's policy; throws ConfigurationError naming the bad option. */
export function configPolicy(options: PolicyOptions): CallPolicy {
  return resolve(options, { replyTimeoutMs: DEFAULT_TIMEOUT_MS, bodyIdleTimeoutMs: DEFAULT_TIMEOUT_MS, retry: undefined }, ConfigurationError);
}

/** A call's policy: its own options over the proxy's; throws InvalidArgumentError naming the bad option. */
export function callPolicy(base: CallPolicy, options: PolicyOptions): CallPolicy {
  if (options.replyTimeout === undefined && options.bodyIdleTimeout === undefined && options.stallTimeout === undefined && options.retry === undefined) {
    return base;
  }
  return resolve(options, base, InvalidArgumentError);
}

function resolve(options: PolicyOptions, base: CallPolicy, Error: ErrorClass): CallPolicy {
  const stall = timeout('stallTimeout', options.stallTimeout, Error);
  return {
    replyTimeoutMs: timeout('replyTimeout', options.replyTimeout, Error) ?? stall ?? base.replyTimeoutMs,
    bodyIdleTimeoutMs: timeout('bodyIdleTimeout', options.bodyIdleTimeout, Error) ?? stall ?? base.bodyIdleTimeoutMs,
    retry: options.retry === undefined ? base.retry : retryPolicy(options.retry, Error),
  };
}

/** A timeout option in ms: undefined when absent, 0 for "never" (0 or Infinity). */
function timeout(name: string, value: unknown, Error: ErrorClass): number | undefined {
  if (value === undefined) return undefined;
  if (value === Infinity) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TIMEOUT_MS) {
    throw new Error(
      `${name} must be a whole number of milliseconds from 0 to ${MAX_TIMEOUT_MS} (0 or Infinity: never), got ${String(value)}`,
    );
  }
  return value;
}

function retryPolicy(value: unknown, Error: ErrorClass): RetryPolicy {
  const policy = value as Partial<RetryPolicy> | null;
  if (typeof policy !== 'object' || policy === null || !Number.isInteger(policy.attempts) || policy.attempts! < 1) {
    throw new Error(`retry.attempts must be a whole number of attempts, 1 or more (1: no retry), got ${String(policy?.attempts)}`);
  }
  const { backoff } = policy;
  if (backoff !== undefined && typeof backoff !== 'function' && !(Number.isFinite(backoff) && backoff >= 0)) {
    throw new Error(`retry.backoff must be milliseconds (a finite number, 0 or more) or a function of the retry number, got ${String(backoff)}`);
  }
  return policy as RetryPolicy;
}

/** A timer Node will not clamp: `ms` of 0 arms nothing. */
export function timer(ms: number, onExpired: () => void): NodeJS.Timeout | undefined {
  if (ms <= 0) return undefined;
  const handle = setTimeout(onExpired, Math.min(ms, MAX_TIMEOUT_MS));
  handle.unref();
  return handle;
}
