/**
 * One error class per failure a caller can act on. Every error thrown by this
 * library is an {@link ImageProxyError}; `instanceof` the subclass to react.
 */

import { classifyMessage, type FailureKind } from './skopeo-messages.js';

/** Base class of every error this library throws. */
export class ImageProxyError extends Error {
  /** Always `"ImageProxyError"`. */
  override name = 'ImageProxyError';
  /** True when repeating the same operation may succeed (network faults). */
  readonly retryable: boolean = false;
}

/** skopeo could not be started (not installed, not executable, died at once). */
export class SpawnError extends ImageProxyError {
  /** Always `"SpawnError"`. */
  override name = 'SpawnError';
  /** The error with its message, the command and the cause (the spawn error). */
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
  /** Always `"ProxyTooOldError"`. */
  override name = 'ProxyTooOldError';
  /** The error for a proxy speaking `actualVersion` where `requiredVersion` is the minimum. */
  constructor(
    /** The oldest protocol version this library supports. */
    readonly requiredVersion: string,
    /** The protocol version the proxy reported. */
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
  /** Always `"ConfigurationError"`. */
  override name = 'ConfigurationError';
}

/** An argument was refused before anything was sent to the proxy. */
export class InvalidArgumentError extends ImageProxyError {
  /** Always `"InvalidArgumentError"`. */
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
  /** Always `"RequestError"`. */
  override name = 'RequestError';
  override readonly retryable: boolean;
  /** What the failure is, read from the proxy's message (see {@link classifyMessage}). */
  readonly kind: FailureKind;
  /** The error for a failed request: `method` and the proxy's message, its code, and a hint for the person. */
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
  /** Always `"ImageNotFoundError"`. */
  override name = 'ImageNotFoundError';
  /** The error for `reference`, with the failed request's method, message and code. */
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
  /** Always `"StallError"`. */
  override name = 'StallError';
  override readonly retryable = true;
  /** The error for the blob `digest`, stalled after `bytesReceived` bytes. */
  constructor(
    /** The blob that stalled. */
    readonly digest: string,
    /** Bytes received before it stalled. */
    readonly bytesReceived: number,
    /** How long it was silent, in milliseconds. */
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
  /** Always `"RequestStallError"`. */
  override name = 'RequestStallError';
  override readonly retryable = true;
  /** The error for a request `method` that got no answer for `stallTimeoutMs`. */
  constructor(
    /** The protocol method that got no answer, e.g. `OpenImage`. */
    readonly method: string,
    /** How long it waited, in milliseconds. */
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
  /** Always `"ProxyRestartedError"`. */
  override name = 'ProxyRestartedError';
  override readonly retryable = true;
  /** The error for a request caught by a restart, with the restart's reason. */
  constructor(
    /** Why the proxy was restarted (a {@link RequestStallError}, a {@link StallError}, …). */
    readonly reason: Error,
    /** Whether the request had reached skopeo (if not, the proxy re-sends it itself). */
    readonly sent: boolean,
  ) {
    super(`the image proxy was restarted (${reason.message}); repeat the operation`, { cause: reason });
  }
}

/** The skopeo process exited (or its socket closed) while it was still needed. */
export class ProxyExitedError extends ImageProxyError {
  /** Always `"ProxyExitedError"`. */
  override name = 'ProxyExitedError';
  /** The error for a skopeo that exited with `exitCode` or was killed by `signal`. */
  constructor(
    /** skopeo's exit code; null when it was killed or only its socket closed. */
    readonly exitCode: number | null,
    /** The signal that killed skopeo, if one did. */
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
  /** Always `"ProtocolError"`. */
  override name = 'ProtocolError';
}

/** A blob's bytes do not match the digest or size that was asked for. */
export class BlobVerificationError extends ImageProxyError {
  /** Always `"BlobVerificationError"`. */
  override name = 'BlobVerificationError';
  /** The error for blob `digest`: what was expected, what came, and what did not match. */
  constructor(
    /** The digest that was asked for. */
    readonly digest: string,
    /** The size that was asked for, in bytes (-1: unknown). */
    readonly expectedSize: number,
    /** Bytes actually received (may be less than the blob when the failure stopped the stream). */
    readonly actualSize: number,
    /** What did not match, in words. */
    readonly detail: string,
  ) {
    super(`blob ${digest} failed verification: ${detail} (expected ${expectedSize} bytes, received ${actualSize})`);
  }
}

/** The running proxy is too old for the requested operation and nothing can stand in for it. */
export class UnsupportedOperationError extends ImageProxyError {
  /** Always `"UnsupportedOperationError"`. */
  override name = 'UnsupportedOperationError';
  /** The error for `operation`, which needs protocol `requiredVersion`, on a proxy speaking `actualVersion`. */
  constructor(
    /** The operation asked for, e.g. `getRawBlob`. */
    readonly operation: string,
    /** The protocol version it needs. */
    readonly requiredVersion: string,
    /** The protocol version the proxy speaks. */
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
  /** Always `"ProxyClosedError"`. */
  override name = 'ProxyClosedError';
  /** The error for a call on a closed proxy. */
  constructor() {
    super('the image proxy is closed; create a new one with ImageProxy.spawn()');
  }
}

/** The {@link OpenedImage} was closed; open the image again. */
export class ImageClosedError extends ImageProxyError {
  /** Always `"ImageClosedError"`. */
  override name = 'ImageClosedError';
  /** The error for a call on the closed image `reference`. */
  constructor(reference: string) {
    super(`image ${reference} is closed; open it again with proxy.openImage()`);
  }
}

function tail(text: string, max: number): string {
  return text.length <= max ? text.trimEnd() : '…' + text.slice(-max).trimEnd();
}
