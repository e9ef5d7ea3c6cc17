/**
 * Blob streams: Node Readables that end only once the blob is verified, and
 * fail with a typed error otherwise, so `await pipeline(blob, sink)` is all a
 * caller needs.
 *
 * Two transfers exist:
 *  - GetBlob (every protocol version): the server verifies the blob and tells
 *    us the verdict in its FinishPipe reply. It closes its end of the pipe only
 *    inside FinishPipe, so FinishPipe is sent once `size` bytes are in, or when
 *    the pipe has gone quiet while we were reading (a source shorter than
 *    `size` would otherwise leave us waiting forever).
 *  - GetRawBlob (0.2.8): data and error pipes, no FinishPipe; we verify the
 *    digest and size ourselves.
 *
 * Size unknown (`getBlob(image, digest)`): GetBlob needs a size, but the
 * server only uses it to check the byte count once the blob is written, and
 * its reply value is the size the source reports. So the request asks for
 * size 0, the stream reads exactly the reply's size, hashes the bytes itself,
 * and takes FinishPipe's one complaint `expected 0 bytes in blob, got N`
 * (N = the bytes received) as the expected outcome: the server sets that
 * message only when the digest verified (a mismatch reads `corrupted blob`).
 * This is how a `containers-storage:` layer is fetched on protocol 0.2.3,
 * where nothing else tells its uncompressed size.
 */
import { createHash, type Hash } from 'node:crypto';
import { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { BlobVerificationError, ImageProxyError, InvalidArgumentError, ProtocolError, RequestError, StallError } from './errors.js';
import { native } from './native.js';
import { UNKNOWN_SIZE } from './protocol.js';

/** Which protocol method a blob stream is served by. */
export type BlobTransfer = 'GetBlob' | 'GetRawBlob';

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

const HIGH_WATER_MARK = 1024 * 1024;
/** How long a GetBlob pipe may stay silent while we read before FinishPipe is sent. */
export const DEFAULT_QUIET_MS = 200;
const SUPPORTED_ALGORITHMS: Record<string, string> = { sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' };

/** Blob pipes get 1 MiB buffers (the unprivileged maximum): fewer wake-ups per MiB. */
const BLOB_PIPE_BYTES = 1024 * 1024;

/** Opens a received pipe fd as a libuv stream (not fs.createReadStream: no threadpool). */
export function pipeSocket(fd: number, pipeBytes?: number): Socket {
  if (pipeBytes) native.setPipeSize(fd, pipeBytes); // best effort: a smaller pipe only costs speed
  return new Socket({ fd, readable: true, writable: false });
}

/** Checks `algorithm:hex` and returns the node:crypto hash name. */
export function hashAlgorithm(digest: string): string {
  const match = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(digest);
  if (!match) {
    throw new InvalidArgumentError(`${JSON.stringify(digest)} is not a digest; expected "algorithm:hex", e.g. "sha256:…"`);
  }
  const algorithm = SUPPORTED_ALGORITHMS[match[1]!];
  if (!algorithm) {
    throw new InvalidArgumentError(`digest algorithm ${match[1]} is not supported; use sha256, sha384 or sha512`);
  }
  return algorithm;
}

interface CommonOptions {
  digest: string;
  expectedSize: number;
  signal?: AbortSignal | undefined;
  /** Fail with StallError when no byte arrives for this long while reading (0: never). */
  stallTimeoutMs?: number | undefined;
  /** Called when the stream stalls, before it is destroyed with the StallError. */
  onStall?: ((error: StallError) => void) | undefined;
  /**
   * Whether the proxy died under the stream: a data pipe that ends early with
   * nothing on the error pipe is then the proxy's death, not a short blob.
   */
  proxyFailure?: (() => Promise<Error | undefined>) | undefined;
}

/** A timer that fires once after `ms` without {@link arm} being called again. */
class IdleTimer {
  #timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly ms: number,
    private readonly onIdle: () => void,
  ) {}

  arm(): void {
    if (this.ms <= 0) return;
    if (this.#timer) {
      this.#timer.refresh(); // called per chunk: cheaper than a new timer each time
      return;
    }
    this.#timer = setTimeout(this.onIdle, this.ms);
    this.#timer.unref(); // a stream being read keeps the loop alive through its socket
  }

  clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

function stallWatch(stream: Readable & BlobStream, options: CommonOptions): IdleTimer {
  const ms = options.stallTimeoutMs ?? 0;
  return new IdleTimer(ms, () => {
    const error = new StallError(stream.digest, stream.bytesReceived, ms);
    options.onStall?.(error);
    stream.destroy(error);
  });
}

/** Options of a {@link FinishPipeBlobStream}. */
export interface FinishPipeOptions extends CommonOptions {
  /** How long the pipe may be quiet, while read, before FinishPipe is sent. */
  quietMs?: number;
  /**
   * The size sent in the GetBlob request, when it is not `expectedSize` (the
   * size was unknown, so 0 was asked for). FinishPipe's complaint
   * `expected REQUESTED bytes in blob, got RECEIVED` is then the expected
   * outcome, and the digest is verified here as well.
   */
  requestedSize?: number;
}

/** GetBlob: the server verifies; FinishPipe carries its verdict. */
export class FinishPipeBlobStream extends Readable implements BlobStream {
  readonly transfer = 'GetBlob' as const;
  readonly digest: string;
  readonly expectedSize: number;
  readonly #requestedSize: number;
  /** Set when the size was unknown: the bytes are hashed here too. */
  readonly #hash: Hash | undefined;
  #received = 0;
  readonly #socket: Socket;
  readonly #finishPipe: () => Promise<void>;
  /** Sends FinishPipe when the pipe goes quiet short of `size` (a short source). */
  readonly #quiet: IdleTimer;
  readonly #stall: IdleTimer;
  #finishSent = false;
  #finishSettled = false;
  #finishError: Error | undefined;
  #eof = false;
  readonly #detachSignal: () => void;

  constructor(fd: number, finishPipe: () => Promise<void>, options: FinishPipeOptions) {
    super({ highWaterMark: HIGH_WATER_MARK });
    this.digest = options.digest;
    this.expectedSize = options.expectedSize;
    this.#requestedSize = options.requestedSize ?? options.expectedSize;
    this.#hash = this.#requestedSize !== this.expectedSize ? createHash(hashAlgorithm(options.digest)) : undefined;
    this.#finishPipe = finishPipe;
    this.#quiet = new IdleTimer(options.quietMs ?? DEFAULT_QUIET_MS, () => this.#sendFinish());
    this.#stall = stallWatch(this, options);
    this.#socket = pipeSocket(fd, BLOB_PIPE_BYTES);
    this.#socket.pause();
    this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on('end', () => {
      this.#eof = true;
      this.#idle();
      this.#sendFinish();
      this.#maybeComplete();
    });
    this.#socket.on('error', (error) => this.destroy(error));
    this.#detachSignal = watchSignal(this, options.signal);
  }

  get bytesReceived(): number {
    return this.#received;
  }

  override _read(): void {
    if (this.#socket.isPaused()) this.#socket.resume();
    this.#waiting();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#idle();
    this.#detachSignal();
    this.#socket.destroy(); // the server's writer sees EPIPE and stops
    if (!this.#finishSent) {
      this.#finishSent = true;
      this.#finishPipe().catch(() => {}); // frees the server's pipe; its verdict no longer matters
    }
    callback(error);
  }

  /** Whether the size to read is known (else the pipe is read until FinishPipe ends it). */
  get #sized(): boolean {
    return this.expectedSize !== UNKNOWN_SIZE;
  }

  #onData(chunk: Buffer): void {
    const room = this.#sized ? this.expectedSize - this.#received : Infinity;
    this.#received += chunk.length;
    this.#hash?.update(chunk);
    if (room > 0 && !this.destroyed) {
      const accepted = this.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
      if (!accepted && (!this.#sized || this.#received < this.expectedSize)) this.#socket.pause();
    }
    if (this.#sized && this.#received >= this.expectedSize) {
      // All we asked for is in: ask for the verdict, and drain any excess so
      // the server's writer (and so FinishPipe) can finish.
      this.#sendFinish();
      this.#socket.resume();
    }
    if (this.#socket.isPaused()) this.#idle();
    else this.#waiting();
  }

  /** We are reading and want bytes: silence now means a short source or a stall. */
  #waiting(): void {
    if (this.destroyed || this.#eof) return;
    if (!this.#finishSent) this.#quiet.arm();
    this.#stall.arm();
  }

  /** The consumer paused us or the pipe ended: silence is expected. */
  #idle(): void {
    this.#quiet.clear();
    this.#stall.clear();
  }

  #sendFinish(): void {
    if (this.#finishSent) return;
    this.#finishSent = true;
    this.#quiet.clear();
    this.#finishPipe().then(
      () => this.#settleFinish(undefined),
      (error: Error) => this.#settleFinish(error),
    );
  }

  #settleFinish(error: Error | undefined): void {
    this.#finishSettled = true;
    this.#finishError = error;
    this.#maybeComplete();
  }

  #maybeComplete(): void {
    if (this.destroyed || !this.#eof || !this.#finishSettled) return;
    const finishError = this.#finishError && !this.#isRequestedSizeComplaint(this.#finishError) ? this.#finishError : undefined;
    if (finishError) {
      this.destroy(verificationFailure(finishError, this.digest, this.expectedSize, this.#received));
    } else if (this.#sized && this.#received !== this.expectedSize) {
      this.destroy(new BlobVerificationError(this.digest, this.expectedSize, this.#received, 'size mismatch'));
    } else {
      const actual = this.#hash && `${this.digest.slice(0, this.digest.indexOf(':'))}:${this.#hash.digest('hex')}`;
      if (actual !== undefined && actual !== this.digest) {
        this.destroy(new BlobVerificationError(this.digest, this.expectedSize, this.#received, `digest mismatch: the bytes hash to ${actual}`));
      } else {
        this.push(null);
      }
    }
  }

  /**
   * Size unknown: the server checked the bytes against the size we asked for
   * (0), not the blob's. `expected 0 bytes in blob, got N` with N the bytes
   * we received says only that; any other message is a real failure.
   */
  #isRequestedSizeComplaint(error: Error): boolean {
    if (this.#requestedSize === this.expectedSize || !(error instanceof RequestError)) return false;
    const match = /^expected (\d+) bytes in blob, got (\d+)$/i.exec(error.serverMessage.trim());
    return match !== null && Number(match[1]) === this.#requestedSize && Number(match[2]) === this.#received;
  }
}

/** GetRawBlob: no FinishPipe; we hash and count the bytes ourselves. */
export class RawBlobStream extends Readable implements BlobStream {
  readonly transfer = 'GetRawBlob' as const;
  readonly digest: string;
  readonly expectedSize: number;
  #received = 0;
  readonly #hash: Hash;
  readonly #data: Socket;
  readonly #errors: Socket;
  readonly #errorChunks: Buffer[] = [];
  #dataEnded = false;
  #errorsEnded = false;
  readonly #stall: IdleTimer;
  readonly #proxyFailure: CommonOptions['proxyFailure'];
  readonly #detachSignal: () => void;

  constructor(dataFd: number, errorFd: number, options: CommonOptions) {
    super({ highWaterMark: HIGH_WATER_MARK });
    this.digest = options.digest;
    this.expectedSize = options.expectedSize;
    this.#hash = createHash(hashAlgorithm(options.digest));
    this.#stall = stallWatch(this, options);
    this.#proxyFailure = options.proxyFailure;
    this.#data = pipeSocket(dataFd, BLOB_PIPE_BYTES);
    this.#errors = pipeSocket(errorFd);
    this.#data.pause();
    this.#data.on('data', (chunk: Buffer) => {
      this.#received += chunk.length;
      this.#hash.update(chunk);
      const more = this.push(chunk);
      // A consumer may destroy us from its 'data' handler, inside push():
      // arming now would leave a timer holding this stream until it fires.
      if (this.destroyed) return;
      if (more) this.#stall.arm();
      else {
        this.#data.pause();
        this.#stall.clear();
      }
    });
    this.#data.on('end', () => {
      this.#dataEnded = true;
      this.#stall.clear();
      void this.#maybeComplete();
    });
    this.#errors.on('data', (chunk: Buffer) => {
      if (this.#errorChunks.length < 64) this.#errorChunks.push(chunk);
    });
    this.#errors.on('end', () => {
      this.#errorsEnded = true;
      void this.#maybeComplete();
    });
    this.#data.on('error', (error) => this.destroy(error));
    this.#errors.on('error', (error) => this.destroy(error));
    this.#detachSignal = watchSignal(this, options.signal);
  }

  get bytesReceived(): number {
    return this.#received;
  }

  override _read(): void {
    this.#data.resume();
    if (!this.#dataEnded) this.#stall.arm();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#stall.clear();
    this.#detachSignal();
    this.#data.destroy();
    this.#errors.destroy();
    callback(error);
  }

  async #maybeComplete(): Promise<void> {
    if (this.destroyed || !this.#dataEnded || !this.#errorsEnded) return;
    const reported = parseRawBlobError(Buffer.concat(this.#errorChunks));
    if (reported) {
      this.destroy(reported);
      return;
    }
    if (this.expectedSize !== -1 && this.#received !== this.expectedSize) {
      const died = await this.#proxyFailure?.();
      this.destroy(died ?? new BlobVerificationError(this.digest, this.expectedSize, this.#received, 'size mismatch'));
      return;
    }
    const actual = `${this.digest.slice(0, this.digest.indexOf(':'))}:${this.#hash.digest('hex')}`;
    if (actual !== this.digest) {
      this.destroy(new BlobVerificationError(this.digest, this.expectedSize, this.#received, `digest mismatch: the bytes hash to ${actual}`));
      return;
    }
    this.push(null);
  }
}

/** The error pipe of GetRawBlob carries `{"code", "message"}` JSON, or nothing. */
export function parseRawBlobError(bytes: Buffer): RequestError | ProtocolError | undefined {
  if (bytes.length === 0) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return new ProtocolError(`GetRawBlob: the error pipe carried something that is not JSON: ${JSON.stringify(bytes.subarray(0, 200).toString())}`);
  }
  const record = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const message = typeof record.message === 'string' ? record.message : JSON.stringify(parsed);
  const code = typeof record.code === 'string' ? record.code : undefined;
  return new RequestError('GetRawBlob', message, code);
}

/**
 * Reads a whole pipe (manifest, config, layer info) while its FinishPipe
 * runs. The native reader costs one poll handle, not a net.Socket: this is
 * the hot path of metadata calls.
 */
export async function readPipe(fd: number, finish: Promise<void>, what: string, maxBytes = 64 * 1024 * 1024): Promise<Buffer> {
  const body = new Promise<Buffer>((resolve, reject) => {
    native.readAll(fd, maxBytes, (error, data) => {
      if (error?.code === 'EFBIG') reject(new ProtocolError(`${what} is larger than ${maxBytes} bytes; refusing to buffer it`));
      else if (error) reject(error);
      else resolve(data!);
    });
  });
  const [read, finished] = await Promise.allSettled([body, finish]);
  if (finished.status === 'rejected') throw finished.reason;
  if (read.status === 'rejected') throw read.reason;
  return read.value;
}

/** Turns a failed FinishPipe into the error a caller can act on. */
function verificationFailure(error: Error, digest: string, expectedSize: number, received: number): Error {
  if (error instanceof RequestError && !error.retryable && /corrupted blob|did not match|expected \d+ bytes|size mismatch|too many bytes/i.test(error.serverMessage)) {
    return new BlobVerificationError(digest, expectedSize, received, error.serverMessage);
  }
  return error instanceof ImageProxyError ? error : new ProtocolError(String(error));
}

function watchSignal(stream: Readable, signal: AbortSignal | undefined): () => void {
  if (!signal) return () => {};
  const onAbort = (): void => {
    stream.destroy(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
  };
  if (signal.aborted) {
    queueMicrotask(onAbort);
    return () => {};
  }
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
