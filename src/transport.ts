/**
 * The request/reply channel to one proxy: requests go out one at a time in
 * FIFO order (the server handles one at a time anyway), each reply is matched
 * to the request in flight and typed here (plain, pipe or dual), and every
 * sent request has a reply deadline. The transport reports to its owner, the
 * supervisor, and decides nothing: a missed deadline is "wedged", a closed
 * socket "disconnected". Once failed, every pending and later request fails.
 */
import { ProtocolError, RequestError } from './errors.js';
import { native, type NativeChannel } from './native.js';
import { decodeReply, encodeRequest, type RequestArg } from './protocol.js';
import {
  closeFd,
  DualReply,
  PipeReply,
  releaseReply,
  ReplyDeadline,
  type DualOwner,
  type PipeOwner,
  type ReplyKind,
  type ReplyOf,
} from './replies.js';

/** Who the transport reports to. */
export interface TransportOwner {
  /** A sent request got no reply in time: the server is stuck, for `reason`. */
  wedged(transport: Transport, reason: Error): void;
  /** The socket closed or failed. */
  disconnected(transport: Transport, cause?: Error): void;
}

export interface RequestOptions<K extends ReplyKind> {
  signal?: AbortSignal | undefined;
  /** How long the reply may take once the request is sent (0: forever). */
  replyTimeoutMs: number;
  /** Undoes what a reply the caller gave up on made on the server (e.g. CloseImage); its fds and pipe are freed anyway. */
  onAbandoned?: ((reply: ReplyOf<K>, transport: Transport) => void) | undefined;
}

interface Pending {
  method: string;
  packet: Buffer;
  kind: ReplyKind;
  replyTimeoutMs: number;
  deadline: ReplyDeadline;
  /** No reply will come (Shutdown). */
  oneWay: boolean;
  /** The caller gave up (abort); the reply is cleaned up when it arrives. */
  abandoned: boolean;
  onAbandoned: ((reply: never, transport: Transport) => void) | undefined;
  resolve(reply: ReplyOf<ReplyKind> | undefined): void;
  reject(error: Error): void;
  cleanup(): void;
}

export class Transport implements PipeOwner, DualOwner {
  readonly #channel: NativeChannel;
  readonly #queue: Pending[] = [];
  #inFlight: Pending | undefined;
  #failure: Error | undefined;
  readonly #failed: Promise<Error>;
  #onFailed!: (error: Error) => void;
  readonly #owner: TransportOwner;

  /** @param fd our end of the socketpair; the transport owns and closes it. */
  constructor(fd: number, owner: TransportOwner) {
    this.#owner = owner;
    this.#failed = new Promise((resolve) => (this.#onFailed = resolve));
    this.#channel = new native.Channel(fd, (error, data, fds) => this.#onPacket(error, data, fds));
    this.#channel.unref();
  }

  /** Whether the transport still accepts requests. */
  get open(): boolean {
    return this.#failure === undefined;
  }

  /** The error every request now fails with, once the transport has failed. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Sends a request once those before it are answered; resolves with its reply, of the kind asked for. */
  request<K extends ReplyKind>(method: string, args: readonly RequestArg[], kind: K, options: RequestOptions<K>): Promise<ReplyOf<K>> {
    const deadline = new ReplyDeadline(method, options.replyTimeoutMs);
    return this.#enqueue(method, args, kind, deadline, options, false) as Promise<ReplyOf<K>>;
  }

  /** Sends a request that gets no reply (Shutdown), in order with the others. */
  async sendOneWay(method: string): Promise<void> {
    await this.#enqueue(method, [], 'plain', new ReplyDeadline(method, 0), { replyTimeoutMs: 0 }, true);
  }

  finishPipe(pipeId: number, deadline: ReplyDeadline): Promise<void> {
    return this.#enqueue('FinishPipe', [pipeId], 'plain', deadline, { replyTimeoutMs: 0 }, false).then(() => undefined);
  }

  failureWithin(ms: number): Promise<Error | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.#failure), ms);
      void this.#failed.then((error) => {
        clearTimeout(timer);
        resolve(error);
      });
    });
  }

  /**
   * Fails every pending and later request with `error` and closes the socket.
   * Requests not yet sent get `unsentError` instead, when given.
   */
  fail(error: Error, unsentError: Error = error): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#onFailed(error);
    this.#channel.close();
    const inFlight = this.#inFlight;
    const queued = [...this.#queue];
    this.#inFlight = undefined;
    this.#queue.length = 0;
    if (inFlight) {
      inFlight.cleanup();
      inFlight.reject(error);
    }
    for (const p of queued) {
      p.cleanup();
      p.reject(unsentError);
    }
  }

  #enqueue(
    method: string,
    args: readonly RequestArg[],
    kind: ReplyKind,
    deadline: ReplyDeadline,
    options: RequestOptions<never>,
    oneWay: boolean,
  ): Promise<ReplyOf<ReplyKind> | undefined> {
    const { signal } = options;
    if (this.#failure) return Promise.reject(this.#failure);
    if (signal?.aborted) return Promise.reject(signal.reason);
    let packet: Buffer;
    try {
      packet = encodeRequest(method, args);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.#queue.indexOf(entry);
        if (index >= 0) this.#queue.splice(index, 1);
        else entry.abandoned = true; // in flight: its reply is cleaned up on arrival, the caller is released now
        reject(signal?.reason);
      };
      const entry: Pending = {
        method,
        packet,
        kind,
        replyTimeoutMs: options.replyTimeoutMs,
        deadline,
        oneWay,
        abandoned: false,
        onAbandoned: options.onAbandoned,
        resolve,
        reject,
        cleanup: () => {
          signal?.removeEventListener('abort', onAbort);
          deadline.settle();
        },
      };
      // Stryker disable next-line ObjectLiteral,BooleanLiteral: equivalent: a signal aborts once, and cleanup() removes the listener
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(entry);
      this.#pump();
    });
  }

  #pump(): void {
    while (!this.#inFlight && !this.#failure) {
      const next = this.#queue.shift();
      if (!next) break;
      try {
        this.#channel.send(next.packet);
      } catch (error) {
        if (isDisconnect(error)) {
          // The child is gone: the request fails with the owner's exit error.
          this.#inFlight = next;
          this.#owner.disconnected(this, error as Error);
          return;
        }
        next.cleanup();
        next.reject(error as Error);
        continue;
      }
      if (next.oneWay) {
        next.cleanup();
        next.resolve(undefined);
        continue;
      }
      this.#inFlight = next;
      next.deadline.arm((reason) => this.#owner.wedged(this, reason));
    }
    // Only a request waiting for its reply keeps the event loop alive (both do nothing once the channel is closed).
    if (this.#inFlight) this.#channel.ref();
    else this.#channel.unref();
  }

  #onPacket(error: (Error & { code?: string }) | null | undefined, data: Buffer | null | undefined, fds: number[] | undefined): void {
    if (error) {
      if (error.code === 'EMSGTRUNC' || error.code === 'ECTRUNC') {
        this.#settle(new ProtocolError(`the proxy's reply could not be received whole: ${error.message}`));
        return;
      }
      this.#owner.disconnected(this, error);
      return;
    }
    if (!data) {
      this.#owner.disconnected(this);
      return;
    }
    const received = fds ?? [];
    const entry = this.#inFlight;
    if (!entry) {
      received.forEach(closeFd);
      this.fail(new ProtocolError('the proxy sent a reply to no request; the connection is out of step'));
      return;
    }
    try {
      const decoded = decodeReply(data);
      if (!decoded.ok) {
        received.forEach(closeFd);
        this.#settle(new RequestError(entry.method, decoded.error, decoded.code));
        return;
      }
      this.#settle(undefined, this.#typed(entry, decoded.value, decoded.pipeId, received));
    } catch (protocolError) {
      received.forEach(closeFd);
      this.#settle(protocolError as Error);
    }
  }

  /** Checks the reply's fds and pipe id against what the method sends, and wraps them. */
  #typed({ method, kind, replyTimeoutMs }: Pending, value: unknown, pipeId: number, fds: number[]): ReplyOf<ReplyKind> {
    const wanted = kind === 'plain' ? 0 : kind === 'pipe' ? 1 : 2;
    if (fds.length !== wanted) throw new ProtocolError(`${method}: expected ${wanted} file descriptor(s) with the reply, got ${fds.length}`);
    if (kind === 'pipe' && pipeId === 0) throw new ProtocolError(`${method}: the reply has a pipe but no pipeid`);
    if (kind !== 'pipe' && pipeId !== 0) throw new ProtocolError(`${method}: the reply has an unexpected pipeid ${pipeId}`);
    if (kind === 'pipe') return new PipeReply(value, pipeId, fds[0]!, this, replyTimeoutMs);
    if (kind === 'dual') return new DualReply(value, fds[0]!, fds[1]!, this);
    return { kind: 'plain', value };
  }

  #settle(error: Error | undefined, reply?: ReplyOf<ReplyKind>): void {
    const entry = this.#inFlight;
    this.#inFlight = undefined;
    if (entry) {
      entry.cleanup();
      if (entry.abandoned) {
        if (reply) {
          releaseReply(reply);
          entry.onAbandoned?.(reply as never, this);
        }
      } else if (error) {
        entry.reject(error);
      } else {
        entry.resolve(reply);
      }
    }
    this.#pump();
  }
}

function isDisconnect(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'EPIPE' || code === 'ECONNRESET' || code === 'ENOTCONN';
}
