/**
 * What both kinds of blob stream share: the public stream type, digest
 * checks, the idle timer behind stall detection, and pipe sockets.
 */
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { InvalidArgumentError } from '../errors.js';
import { native } from '../native.js';
import { timer } from '../policy.js';

/** Which protocol method a blob stream is served by. */
export type BlobTransfer = 'GetBlob' | 'GetRawBlob';

export const BLOB_TRANSFERS: readonly BlobTransfer[] = ['GetBlob', 'GetRawBlob'];

/** A verified blob: ends only after verification succeeded. */
export interface BlobStream extends Readable {
  /** How the bytes are transferred (and so who verifies them). */
  readonly transfer: BlobTransfer;
  /** The digest the bytes are verified against. */
  readonly digest: string;
  /**
   * The blob size the stream is verified against: the size asked for, or,
   * when it was unknown, the size the proxy reported (-1 if the source could
   * not tell either: then the digest alone is checked).
   */
  readonly expectedSize: number;
  /** Bytes received from the proxy so far. */
  readonly bytesReceived: number;
}

/** What both stream kinds are told when they are made. */
export interface StreamOptions {
  digest: string;
  expectedSize: number;
  signal?: AbortSignal | undefined;
  /** Fail with StallError when no byte arrives for this long while reading (0: never). */
  bodyIdleTimeoutMs: number;
  /** Hash on the pipe's reader thread (default: where the addon can; see {@link BlobPipe}). */
  hashOffThread?: boolean | undefined;
}

/**
 * What a blob stream buffers for a consumer that is behind: one reader block.
 * The reader thread holds the next one ready; with 1 MiB here, whole images
 * at jobs 4 grew RSS by about 6 MiB more at the same speed (bench/RESULTS.md 4f).
 */
export const HIGH_WATER_MARK = 256 * 1024;

/** Blob pipes get 1 MiB buffers (the unprivileged maximum): fewer wake-ups per MiB; the reader thread drains one in a few 256 KiB reads. */
export const BLOB_PIPE_BYTES = 1024 * 1024;

const SUPPORTED_ALGORITHMS: Record<string, string> = { sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' };

/** Checks `algorithm:hex` and returns the node:crypto hash name. */
export function hashAlgorithm(digest: string): string {
  const match = typeof digest === 'string' ? /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(digest) : null;
  if (!match) {
    throw new InvalidArgumentError(`${JSON.stringify(digest)} is not a digest; expected "algorithm:hex", e.g. "sha256:…"`);
  }
  const algorithm = SUPPORTED_ALGORITHMS[match[1]!];
  if (!algorithm) {
    throw new InvalidArgumentError(`digest algorithm ${match[1]} is not supported; use sha256, sha384 or sha512`);
  }
  return algorithm;
}

/** `algorithm:hex` of the bytes' hex digest, for comparison with the digest asked for. */
export function digestOf(digest: string, hex: string): string {
  return `${digest.slice(0, digest.indexOf(':'))}:${hex}`;
}

/** Gives a blob pipe a bigger buffer, best effort (a smaller pipe only costs speed); returns the fd. */
export function setPipeSize(fd: number, pipeBytes: number): number {
  native.setPipeSize(fd, pipeBytes);
  return fd;
}

/** Opens a small received pipe fd (GetRawBlob's error pipe) as a libuv stream. The socket owns the fd. */
export function pipeSocket(fd: number): Socket {
  return new Socket({ fd, readable: true, writable: false });
}

/** A timer that fires once after `ms` without {@link arm} being called again (0: never). */
export class IdleTimer {
  #timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly ms: number,
    private readonly onIdle: () => void,
  ) {}

  arm(): void {
    if (this.#timer) {
      this.#timer.refresh(); // called per chunk: cheaper than a new timer each time
      return;
    }
    // unref'd: a stream being read keeps the loop alive through its socket
    this.#timer = timer(this.ms, () => {
      this.#timer = undefined;
      this.onIdle();
    });
  }

  clear(): void {
    clearTimeout(this.#timer); // nothing to clear is fine: clearTimeout(undefined) does nothing
    this.#timer = undefined;
  }
}

/** Destroys `stream` when `signal` aborts; returns the detach function. */
export function watchSignal(stream: Readable, signal: AbortSignal | undefined): () => void {
  if (!signal) return () => {};
  const onAbort = (): void => {
    stream.destroy(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
  };
  if (signal.aborted) {
    queueMicrotask(onAbort);
    return () => {};
  }
  // Stryker disable next-line ObjectLiteral,BooleanLiteral: equivalent: a signal aborts once, and the stream detaches on destroy
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
