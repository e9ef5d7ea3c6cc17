/**
 * Replies typed at the transport boundary. A reply that carries fds owns them
 * until a reader takes them, and a pipe reply owns its FinishPipe: sent once,
 * from here, whichever way the pipe ends (read to size, EOF, quiet, destroy,
 * abort, the proxy's death).
 */
import { closeSync } from 'node:fs';
import { ProtocolError, RequestStallError } from './errors.js';
import { native } from './native.js';
import { timer } from './policy.js';

export type ReplyKind = 'plain' | 'pipe' | 'dual';

/** A reply with a value and nothing else. */
export interface PlainReply {
  readonly kind: 'plain';
  readonly value: unknown;
}

export type ReplyOf<K extends ReplyKind> = K extends 'plain' ? PlainReply : K extends 'pipe' ? PipeReply : DualReply;

/** After its body stalled, how long a pipe's FinishPipe may take before the proxy counts as wedged. */
export const STALLED_FINISH_GRACE_MS = 1000;

/**
 * When a sent request must be answered: armed by the transport when the
 * request goes out, cleared when its reply (or the transport's failure)
 * comes. On expiry the transport reports itself wedged, for `reason`.
 */
export class ReplyDeadline {
  #ms: number;
  #reason: () => Error;
  #timer: NodeJS.Timeout | undefined;
  #onExpired: ((reason: Error) => void) | undefined;
  #settled = false;

  /** `ms` of 0: no deadline. */
  constructor(method: string, ms: number) {
    this.#ms = ms;
    this.#reason = () => new RequestStallError(method, ms);
  }

  /** @internal The transport, when the request is sent. */
  arm(onExpired: (reason: Error) => void): void {
    if (this.#settled) return;
    this.#onExpired = onExpired;
    this.#restart();
  }

  /** Progress: the wait starts over. */
  refresh(): void {
    if (this.#timer) this.#timer.refresh();
  }

  /** The answer is now due within `ms`, and its absence means `reason`. */
  tighten(ms: number, reason: Error): void {
    if (this.#settled || (this.#ms > 0 && this.#ms <= ms)) return;
    this.#ms = ms;
    this.#reason = () => reason;
    if (this.#onExpired) this.#restart();
  }

  /** @internal The transport, when the reply came or will never come. */
  settle(): void {
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #restart(): void {
    clearTimeout(this.#timer);
    const onExpired = this.#onExpired!;
    this.#timer = timer(this.#ms, () => {
      this.settle();
      onExpired(this.#reason());
    });
  }
}

/** What a pipe reply needs from the transport it came from. */
export interface PipeOwner {
  /** Sends FinishPipe for `pipeId` with `deadline`; never abortable, the pipe must be finished. */
  finishPipe(pipeId: number, deadline: ReplyDeadline): Promise<void>;
}

/** A reply with a pipe (GetManifest, GetFullConfig, GetLayerInfoPiped, GetBlob). */
export class PipeReply {
  readonly kind = 'pipe' as const;
  #fd: number | undefined;
  #finished: Promise<void> | undefined;
  readonly #deadline: ReplyDeadline;

  /** @internal The transport, which checked the shape. */
  constructor(
    readonly value: unknown,
    readonly pipeId: number,
    fd: number,
    private readonly owner: PipeOwner,
    replyTimeoutMs: number,
  ) {
    this.#fd = fd;
    this.#deadline = new ReplyDeadline('FinishPipe', replyTimeoutMs);
  }

  /** Hands the read end over: the caller now closes it. */
  takeFd(): number {
    const fd = this.#fd;
    if (fd === undefined) throw new Error('the pipe fd was already taken or closed');
    this.#fd = undefined;
    return fd;
  }

  /** Sends FinishPipe once; every call returns its outcome (the server's verdict on the pipe). */
  finish(): Promise<void> {
    this.#finished ??= this.owner.finishPipe(this.pipeId, this.#deadline);
    return this.#finished;
  }

  /** The body moved: an outstanding FinishPipe's deadline starts over. */
  progress(): void {
    this.#deadline.refresh();
  }

  /**
   * Gives the pipe up: closes the fd if nobody took it and finishes the pipe,
   * ignoring the verdict. With `stalled`, the pipe's writer was silent already:
   * a FinishPipe that is not answered within a grace means the proxy is wedged.
   */
  release(stalled?: Error): void {
    if (this.#fd !== undefined) closeFd(this.takeFd());
    if (stalled) this.#deadline.tighten(STALLED_FINISH_GRACE_MS, stalled);
    this.finish().catch(() => {});
  }

  /**
   * Reads the whole pipe (a manifest, a config, layer info) while its
   * FinishPipe runs. An aborted read settles at once; the pipe is still
   * finished behind it. The native reader costs one poll handle, not a
   * net.Socket: this is the hot path of metadata calls.
   */
  async readAll(what: string, signal?: AbortSignal, maxBytes = 64 * 1024 * 1024): Promise<Buffer> {
    const fd = this.takeFd();
    const body = new Promise<Buffer>((resolve, reject) => {
      native.readAll(fd, maxBytes, (error, data) => {
        if (error?.code === 'EFBIG') reject(new ProtocolError(`${what} is larger than ${maxBytes} bytes; refusing to buffer it`));
        else if (error) reject(error);
        else resolve(data!);
      });
    });
    const both = Promise.allSettled([body, this.finish()]).then(([read, finished]) => {
      if (finished.status === 'rejected') throw finished.reason;
      if (read.status === 'rejected') throw read.reason;
      return read.value;
    });
    return signal ? untilAborted(both, signal) : both;
  }
}

/** What a GetRawBlob reply needs from its transport. */
export interface DualOwner {
  /** The transport's failure, if it fails within `ms` (a data pipe that ended early may be the proxy dying). */
  failureWithin(ms: number): Promise<Error | undefined>;
}

/** GetRawBlob's reply: a data fd and an error fd, no pipe id, no FinishPipe. */
export class DualReply {
  readonly kind = 'dual' as const;
  #fds: [number, number] | undefined;

  /** @internal The transport, which checked the shape. */
  constructor(
    readonly value: unknown,
    dataFd: number,
    errorFd: number,
    private readonly owner: DualOwner,
  ) {
    this.#fds = [dataFd, errorFd];
  }

  /** Hands both fds over (data, error): the caller now closes them. */
  takeFds(): [number, number] {
    const fds = this.#fds;
    if (!fds) throw new Error('the fds were already taken or closed');
    this.#fds = undefined;
    return fds;
  }

  /** Closes the fds if nobody took them. */
  release(): void {
    if (this.#fds) for (const fd of this.takeFds()) closeFd(fd);
  }

  /** See {@link DualOwner.failureWithin}. */
  proxyFailureWithin(ms: number): Promise<Error | undefined> {
    return this.owner.failureWithin(ms);
  }
}

export type Reply = PlainReply | PipeReply | DualReply;

/** Frees what a reply holds: fds closed, pipe finished. */
export function releaseReply(reply: Reply): void {
  if (reply.kind !== 'plain') reply.release();
}

/** Settles with `promise`, or rejects with the signal's reason as soon as it aborts. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      promise.catch(() => {});
      reject(signal.reason);
    };
    // Stryker disable next-line ObjectLiteral,BooleanLiteral: equivalent: a signal aborts once, and settling removes the listener
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => (signal.removeEventListener('abort', onAbort), resolve(value)),
      (error: unknown) => (signal.removeEventListener('abort', onAbort), reject(error)),
    );
  });
}

export function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
