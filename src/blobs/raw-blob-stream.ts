/**
 * GetRawBlob (protocol 0.2.8): a data pipe and an error pipe, no FinishPipe;
 * the digest and size are checked here. The data pipe is a {@link BlobPipe}:
 * read and hashed off the main thread.
 */
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { BlobVerificationError, ProtocolError, RequestError, StallError } from '../errors.js';
import type { DualReply } from '../replies.js';
import { BlobPipe } from './blob-pipe.js';
import {
  BLOB_PIPE_BYTES,
  digestOf,
  hashAlgorithm,
  HIGH_WATER_MARK,
  IdleTimer,
  pipeSocket,
  setPipeSize,
  watchSignal,
  type BlobStream,
  type StreamOptions,
} from './stream-kit.js';

/** How long a data pipe that ended short waits to learn whether the proxy died under it. */
const DEATH_WAIT_MS = 1000;

export class RawBlobStream extends Readable implements BlobStream {
  readonly transfer = 'GetRawBlob' as const;
  readonly digest: string;
  readonly expectedSize: number;
  #received = 0;
  readonly #reply: DualReply;
  readonly #data: BlobPipe;
  readonly #errors: Socket;
  readonly #errorChunks: Buffer[] = [];
  #dataEnded = false;
  #errorsEnded = false;
  readonly #stall: IdleTimer;
  readonly #detachSignal: () => void;

  constructor(reply: DualReply, options: StreamOptions) {
    super({ highWaterMark: HIGH_WATER_MARK });
    this.digest = options.digest;
    this.expectedSize = options.expectedSize;
    this.#stall = new IdleTimer(options.bodyIdleTimeoutMs, () => this.destroy(new StallError(this.digest, this.#received, options.bodyIdleTimeoutMs)));
    this.#reply = reply;
    const [dataFd, errorFd] = reply.takeFds();
    this.#data = new BlobPipe(setPipeSize(dataFd, BLOB_PIPE_BYTES), { algorithm: hashAlgorithm(options.digest), hashOffThread: options.hashOffThread });
    this.#errors = pipeSocket(errorFd);
    this.#data.pause();
    // An unread stream must not keep the process alive (as a paused GetBlob
    // pipe does not): the error pipe counts only once the data has ended.
    this.#errors.unref();
    this.#data.on('data', (chunk: Buffer) => {
      this.#received += chunk.length;
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
      if (!this.#errorsEnded) this.#errors.ref();
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
      const died = await this.#reply.proxyFailureWithin(DEATH_WAIT_MS);
      this.destroy(died ?? new BlobVerificationError(this.digest, this.expectedSize, this.#received, 'size mismatch'));
      return;
    }
    const actual = digestOf(this.digest, this.#data.digest());
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
