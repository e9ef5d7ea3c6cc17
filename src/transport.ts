/**
 * The request/reply channel to one proxy: requests go out one at a time in
 * FIFO order (the server handles one at a time anyway), each reply is matched
 * to the request in flight, and received fds are handed to the caller, who
 * then owns them. When the socket closes, every pending and later request
 * fails with the error the owner supplies.
 */
import { closeSync } from 'node:fs';
import { ProtocolError, RequestError } from './errors.js';
import { native, type NativeChannel } from './native.js';
import { decodeReply, encodeRequest, type Reply, type RequestArg } from './protocol.js';

/** What a successful reply must carry besides its value. */
export type ReplyShape =
  /** No pipe, no fds. */
  | 'plain'
  /** A pipe id and one fd (the read end of the pipe). */
  | 'pipe'
  /** Two fds, data and error, and no pipe id (GetRawBlob). */
  | 'dual';

export interface RequestOptions {
  shape?: ReplyShape;
  signal?: AbortSignal | undefined;
  /** Undoes what a reply the caller gave up on created on the server (e.g. CloseImage). */
  onAbandoned?: ((reply: Reply) => void) | undefined;
  /** Called if no reply came `ms` after the request was sent (time in the queue does not count). */
  deadline?: { ms: number; onExpired: () => void } | undefined;
}

interface Pending {
  method: string;
  packet: Buffer;
  shape: ReplyShape;
  /** No reply will come (Shutdown). */
  oneWay: boolean;
  /** The caller gave up (abort); the reply is cleaned up when it arrives. */
  abandoned: boolean;
  onAbandoned: ((reply: Reply) => void) | undefined;
  deadline: RequestOptions['deadline'];
  timer?: NodeJS.Timeout;
  resolve(reply: Reply): void;
  reject(error: Error): void;
  cleanup(): void;
}

export class Transport {
  readonly #channel: NativeChannel;
  readonly #queue: Pending[] = [];
  #inFlight: Pending | undefined;
  #failure: Error | undefined;
  readonly #onDisconnect: (cause?: Error) => void;

  /**
   * @param fd our end of the socketpair; the transport owns and closes it.
   * @param onDisconnect called once when the socket closes or fails; the owner
   *   answers by calling {@link fail} with the error callers should see.
   */
  constructor(fd: number, onDisconnect: (cause?: Error) => void) {
    this.#onDisconnect = onDisconnect;
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

  /** Sends a request once those before it are answered; resolves with its reply. */
  request(method: string, args: readonly RequestArg[], options: RequestOptions = {}): Promise<Reply> {
    return this.#enqueue(method, args, options.shape ?? 'plain', false, options.signal, options.onAbandoned, options.deadline);
  }

  /** Sends a request that gets no reply (Shutdown), in order with the others. */
  async sendOneWay(method: string): Promise<void> {
    await this.#enqueue(method, [], 'plain', true, undefined);
  }

  /**
   * Fails every pending and later request with `error` and closes the socket.
   * Requests not yet sent get `unsentError` instead, when given.
   */
  fail(error: Error, unsentError: Error = error): void {
    if (this.#failure) return;
    this.#failure = error;
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
    shape: ReplyShape,
    oneWay: boolean,
    signal: AbortSignal | undefined,
    onAbandoned?: (reply: Reply) => void,
    deadline?: RequestOptions['deadline'],
  ): Promise<Reply> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (signal?.aborted) return Promise.reject(signal.reason);
    let packet: Buffer;
    try {
      packet = encodeRequest(method, args);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<Reply>((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.#queue.indexOf(entry);
        if (index >= 0) this.#queue.splice(index, 1);
        else entry.abandoned = true; // in flight: its reply is cleaned up on arrival
        reject(signal?.reason);
      };
      const entry: Pending = {
        method,
        packet,
        shape,
        oneWay,
        abandoned: false,
        onAbandoned,
        deadline,
        resolve,
        reject,
        cleanup: () => {
          signal?.removeEventListener('abort', onAbort);
          if (entry.timer) clearTimeout(entry.timer);
        },
      };
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
          this.#onDisconnect(error as Error);
          return;
        }
        next.cleanup();
        next.reject(error as Error);
        continue;
      }
      if (next.oneWay) {
        next.cleanup();
        next.resolve({ value: null, pipeId: 0, fds: [] });
        continue;
      }
      this.#inFlight = next;
      if (next.deadline && next.deadline.ms > 0) {
        next.timer = setTimeout(next.deadline.onExpired, next.deadline.ms);
        next.timer.unref();
      }
    }
    // Only a request waiting for its reply keeps the event loop alive.
    if (this.#inFlight) this.#channel.ref();
    else if (!this.#failure) this.#channel.unref();
  }

  #onPacket(error: (Error & { code?: string }) | null | undefined, data: Buffer | null | undefined, fds: number[] | undefined): void {
    if (error) {
      if (error.code === 'EMSGTRUNC' || error.code === 'ECTRUNC') {
        this.#settle(new ProtocolError(`the proxy's reply could not be received whole: ${error.message}`));
        return;
      }
      this.#onDisconnect(error);
      return;
    }
    if (!data) {
      this.#onDisconnect();
      return;
    }
    const received = fds ?? [];
    if (!this.#inFlight) {
      closeFds(received);
      this.fail(new ProtocolError('the proxy sent a reply to no request; the connection is out of step'));
      return;
    }
    try {
      const decoded = decodeReply(data);
      if (!decoded.ok) {
        closeFds(received);
        this.#settle(new RequestError(this.#inFlight.method, decoded.error, decoded.code));
        return;
      }
      checkShape(this.#inFlight.method, this.#inFlight.shape, decoded.pipeId, received);
      this.#settle(undefined, { value: decoded.value, pipeId: decoded.pipeId, fds: received });
    } catch (protocolError) {
      closeFds(received);
      this.#settle(protocolError as Error);
    }
  }

  #settle(error: Error | undefined, reply?: Reply): void {
    const entry = this.#inFlight;
    this.#inFlight = undefined;
    if (entry) {
      entry.cleanup();
      if (entry.abandoned) {
        if (reply) this.#release(reply, entry.onAbandoned);
      } else if (error) {
        entry.reject(error);
      } else if (reply) {
        entry.resolve(reply);
      }
    }
    this.#pump();
  }

  /** Frees what an abandoned request was given: fds, the server's pipe, and whatever else it made. */
  #release(reply: Reply, onAbandoned: ((reply: Reply) => void) | undefined): void {
    closeFds(reply.fds);
    if (reply.pipeId !== 0) this.request('FinishPipe', [reply.pipeId]).catch(() => {});
    onAbandoned?.(reply);
  }
}

function checkShape(method: string, shape: ReplyShape, pipeId: number, fds: number[]): void {
  const wanted = shape === 'plain' ? 0 : shape === 'pipe' ? 1 : 2;
  if (fds.length !== wanted) {
    throw new ProtocolError(`${method}: expected ${wanted} file descriptor(s) with the reply, got ${fds.length}`);
  }
  if (shape === 'pipe' && pipeId === 0) throw new ProtocolError(`${method}: the reply has a pipe but no pipeid`);
  if (shape !== 'pipe' && pipeId !== 0) throw new ProtocolError(`${method}: the reply has an unexpected pipeid ${pipeId}`);
}

function isDisconnect(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'EPIPE' || code === 'ECONNRESET' || code === 'ENOTCONN';
}

export function closeFds(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }
}
