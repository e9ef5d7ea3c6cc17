/**
 * One error class per failure a caller can act on. Every error thrown by this
 * library is an {@link ImageProxyError}; `instanceof` the subclass to react.
 */

import { classifyMessage, type FailureKind } from './skopeo-messages.js';

/** Base class of every error this library throws. */
export class ImageProxyError extends Error {
  override name = 'ImageProxyError';
  /** True when repeating the same operation may succeed (network faults). */
  readonly retryable: boolean = false;
}

/** skopeo could not be started (not installed, not executable, died at once). */
export class SpawnError extends ImageProxyError {
  override name = 'SpawnError';
  constructor(
    message: string,
    /** The argv that was (or would have been) executed. */
    readonly command: readonly string[],
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The running proxy speaks a protocol older than this library supports. */
export class ProxyTooOldError extends ImageProxyError {
  override name = 'ProxyTooOldError';
  constructor(
    readonly requiredVersion: string,
    readonly actualVersion: string,
  ) {
    super(
      `skopeo's image proxy speaks protocol ${actualVersion}, but at least ${requiredVersion} is required: ` +
        `install skopeo 1.9 or newer, or point skopeoCommand at a newer skopeo`,
    );
  }
}

/** The {@link ImageProxyConfig} is contradictory or not supported by this skopeo. */
export class ConfigurationError extends ImageProxyError {
  override name = 'ConfigurationError';
}

/** An argument was refused before anything was sent to the proxy. */
export class InvalidArgumentError extends ImageProxyError {
  override name = 'InvalidArgumentError';
}

/** Error codes the proxy attaches to failures (protocol 0.2.8). */
export type ProxyErrorCode = 'EPIPE' | 'retryable' | 'other';

/** Whether skopeo's message describes a transient failure (see {@link classifyMessage}). */
export function isTransientMessage(message: string): boolean {
  return classifyMessage(message) === 'transient';
}

/** The proxy answered a request with an error (image not found, unauthorized, ...). */
export class RequestError extends ImageProxyError {
  override name = 'RequestError';
  override readonly retryable: boolean;
  /** What the failure is, read from the proxy's message (see {@link classifyMessage}). */
  readonly kind: FailureKind;
  constructor(
    /** The protocol method that failed, e.g. `OpenImage`. */
    readonly method: string,
    /** The proxy's own message. */
    readonly serverMessage: string,
    /** The proxy's error code, when it sends one (0.2.8 and later). */
    readonly code?: string,
    options?: ErrorOptions & {
      /** What the person can do about it, appended to the message (not to `serverMessage`). */
      hint?: string | undefined;
    },
  ) {
    super(`${method} failed: ${serverMessage}${options?.hint ? `; ${options.hint}` : ''}`, options);
    this.kind = classifyMessage(serverMessage);
    this.retryable = code === 'retryable' || this.kind === 'transient';
  }
}

/**
 * The image does not exist where the reference points: a missing tag or
 * repository, a missing layout, archive or directory, or an image that is not
 * in the `containers-storage:` store named (for which the message says how
 * to name another store or driver). `openImageOptional` returns `null` instead.
 */
export class ImageNotFoundError extends RequestError {
  override name = 'ImageNotFoundError';
  constructor(
    /** The reference that was opened. */
    readonly reference: string,
    method: string,
    serverMessage: string,
    code?: string,
    options?: ErrorOptions & { hint?: string | undefined },
  ) {
    super(method, serverMessage, code, options);
  }
}

/** A blob stream received no bytes for `stallTimeout` while it was being read. */
export class StallError extends ImageProxyError {
  override name = 'StallError';
  override readonly retryable = true;
  constructor(
    readonly digest: string,
    readonly bytesReceived: number,
    readonly stallTimeoutMs: number,
  ) {
    super(`blob ${digest} stalled: no data for ${stallTimeoutMs} ms after ${bytesReceived} bytes; the registry or network stopped sending`);
  }
}

/**
 * A request got no answer for `stallTimeout` (e.g. OpenImage against a
 * registry that accepts connections and never answers). It is the `reason`
 * of the {@link ProxyRestartedError} the request fails with.
 */
export class RequestStallError extends ImageProxyError {
  override name = 'RequestStallError';
  override readonly retryable = true;
  constructor(
    readonly method: string,
    readonly stallTimeoutMs: number,
  ) {
    super(`${method} got no answer for ${stallTimeoutMs} ms; the registry or network stopped answering`);
  }
}

/**
 * The proxy was restarted (after a stall left it wedged) while this request
 * was in flight. Open images keep working; repeat the call.
 */
export class ProxyRestartedError extends ImageProxyError {
  override name = 'ProxyRestartedError';
  override readonly retryable = true;
  constructor(
    readonly reason: Error,
    /** Whether the request had reached skopeo (if not, the proxy re-sends it itself). */
    readonly sent: boolean,
  ) {
    super(`the image proxy was restarted (${reason.message}); repeat the operation`, { cause: reason });
  }
}

/** The skopeo process exited (or its socket closed) while it was still needed. */
export class ProxyExitedError extends ImageProxyError {
  override name = 'ProxyExitedError';
  constructor(
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    /** The last lines skopeo wrote to stderr. */
    readonly stderr: string,
  ) {
    const how =
      signal !== null ? `was killed by ${signal}` : exitCode !== null ? `exited with code ${exitCode}` : 'closed its socket';
    super(`skopeo image proxy ${how}${stderr.trim() ? `; its stderr ends with:\n${tail(stderr, 2000)}` : ''}`);
  }
}

/** The proxy sent something that breaks the protocol (malformed reply, unexpected fds). */
export class ProtocolError extends ImageProxyError {
  override name = 'ProtocolError';
}

/** A blob's bytes do not match the digest or size that was asked for. */
export class BlobVerificationError extends ImageProxyError {
  override name = 'BlobVerificationError';
  constructor(
    readonly digest: string,
    readonly expectedSize: number,
    /** Bytes actually received (may be less than the blob when the failure stopped the stream). */
    readonly actualSize: number,
    readonly detail: string,
  ) {
    super(`blob ${digest} failed verification: ${detail} (expected ${expectedSize} bytes, received ${actualSize})`);
  }
}

/** The running proxy is too old for the requested operation and nothing can stand in for it. */
export class UnsupportedOperationError extends ImageProxyError {
  override name = 'UnsupportedOperationError';
  constructor(
    readonly operation: string,
    readonly requiredVersion: string,
    readonly actualVersion: string,
    options?: ErrorOptions,
  ) {
    super(
      `${operation} needs image proxy protocol ${requiredVersion} or newer, but this skopeo speaks ${actualVersion}: ` +
        `use a newer skopeo (skopeoCommand)`,
      options,
    );
  }
}

/** The {@link ImageProxy} was closed; spawn a new one. */
export class ProxyClosedError extends ImageProxyError {
  override name = 'ProxyClosedError';
  constructor() {
    super('the image proxy is closed; create a new one with ImageProxy.spawn()');
  }
}

/** The {@link OpenedImage} was closed; open the image again. */
export class ImageClosedError extends ImageProxyError {
  override name = 'ImageClosedError';
  constructor(reference: string) {
    super(`image ${reference} is closed; open it again with proxy.openImage()`);
  }
}

function tail(text: string, max: number): string {
  return text.length <= max ? text.trimEnd() : '…' + text.slice(-max).trimEnd();
}
