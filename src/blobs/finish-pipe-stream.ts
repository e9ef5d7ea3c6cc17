/**
 * GetBlob (every protocol version): the server verifies the blob and tells us
 * the verdict in its FinishPipe reply. It closes its end of the pipe only
 * inside FinishPipe, so FinishPipe is sent once `size` bytes are in, or when
 * the pipe has gone quiet while we were reading (a source shorter than `size`
 * would otherwise leave us waiting forever). The PipeReply sends it, once.
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
import { Readable } from 'node:stream';
import { BlobVerificationError, ImageProxyError, ProtocolError, RequestError, StallError } from '../errors.js';
import { UNKNOWN_SIZE } from '../protocol.js';
import type { PipeReply } from '../replies.js';
import { parseSizeComplaint } from '../skopeo-messages.js';
import { BlobPipe } from './blob-pipe.js';
import {
  BLOB_PIPE_BYTES,
  digestOf,
  hashAlgorithm,
  HIGH_WATER_MARK,
  IdleTimer,
  setPipeSize,
  watchSignal,
  type BlobStream,
  type StreamOptions,
} from './stream-kit.js';

/** How long a GetBlob pipe may stay silent while we read before FinishPipe is sent. */
export const DEFAULT_QUIET_MS = 200;

export interface FinishPipeStreamOptions extends StreamOptions {
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

export class FinishPipeBlobStream extends Readable implements BlobStream {
  readonly transfer = 'GetBlob' as const;
  readonly digest: string;
  readonly expectedSize: number;
  readonly #requestedSize: number;
  /** Set when the size was unknown: the bytes are hashed here too. */
  readonly #hashing: boolean;
  #received = 0;
  readonly #pipe: PipeReply;
  readonly #data: BlobPipe;
  /** Sends FinishPipe when the pipe goes quiet short of `size` (a short source). */
  readonly #quiet: IdleTimer;
  readonly #stall: IdleTimer;
  #finishSent = false;
  #verdict: { error: Error | undefined } | undefined;
  #eof = false;
  readonly #detachSignal: () => void;

  constructor(pipe: PipeReply, options: FinishPipeStreamOptions) {
    super({ highWaterMark: HIGH_WATER_MARK });
    this.digest = options.digest;
    this.expectedSize = options.expectedSize;
    this.#requestedSize = options.requestedSize ?? options.expectedSize;
    this.#hashing = this.#requestedSize !== this.expectedSize;
    this.#pipe = pipe;
    this.#quiet = new IdleTimer(options.quietMs ?? DEFAULT_QUIET_MS, () => this.#sendFinish());
    this.#stall = new IdleTimer(options.bodyIdleTimeoutMs, () => this.destroy(new StallError(this.digest, this.#received, options.bodyIdleTimeoutMs)));
    this.#data = new BlobPipe(setPipeSize(pipe.takeFd(), BLOB_PIPE_BYTES), {
      algorithm: this.#hashing ? hashAlgorithm(options.digest) : undefined,
      hashOffThread: options.hashOffThread,
    });
    this.#data.pause();
    this.#data.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#data.on('end', () => {
      this.#eof = true;
      this.#idle();
      this.#sendFinish();
      this.#maybeComplete();
    });
    this.#data.on('error', (error) => this.destroy(error));
    this.#detachSignal = watchSignal(this, options.signal);
  }

  get bytesReceived(): number {
    return this.#received;
  }

  override _read(): void {
    this.#data.resume(); // nothing to do when it flows already
    this.#waiting();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#idle();
    this.#detachSignal();
    this.#data.destroy(); // the server's writer sees EPIPE and stops
    // Frees the server's pipe (its verdict no longer matters). After a stall the
    // writer is stuck upstream: if FinishPipe is not answered soon, the proxy is wedged.
    this.#pipe.release(error instanceof StallError ? error : undefined);
    callback(error);
  }

  /** Whether the size to read is known (else the pipe is read until FinishPipe ends it). */
  get #sized(): boolean {
    return this.expectedSize !== UNKNOWN_SIZE;
  }

  #onData(chunk: Buffer): void {
    const room = this.#sized ? this.expectedSize - this.#received : Infinity;
    this.#received += chunk.length;
    this.#pipe.progress();
    if (room > 0 && !this.destroyed) {
      const accepted = this.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
      if (!accepted && (!this.#sized || this.#received < this.expectedSize)) this.#data.pause();
    }
    if (this.#sized && this.#received >= this.expectedSize) {
      // All we asked for is in: ask for the verdict, and drain any excess so
      // the server's writer (and so FinishPipe) can finish.
      this.#sendFinish();
      this.#data.resume();
    }
    if (this.#data.isPaused()) this.#idle();
    else this.#waiting();
  }

  /**
   * We are reading and want bytes: silence now means a short source or a
   * stall. Once all `size` bytes are in, only the verdict is awaited: that is
   * FinishPipe's reply, under its reply deadline, not body silence.
   */
  #waiting(): void {
    if (this.destroyed || this.#eof) return;
    if (!this.#finishSent) this.#quiet.arm();
    if (this.#sized && this.#received >= this.expectedSize) this.#stall.clear();
    else this.#stall.arm();
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
    this.#pipe.finish().then(
      () => this.#settleFinish(undefined),
      (error: Error) => this.#settleFinish(error),
    );
  }

  #settleFinish(error: Error | undefined): void {
    this.#verdict = { error };
    this.#maybeComplete();
  }

  #maybeComplete(): void {
    if (this.destroyed || !this.#eof || !this.#verdict) return;
    const { error } = this.#verdict;
    if (error && !this.#isRequestedSizeComplaint(error)) {
      this.destroy(verificationFailure(error, this.digest, this.expectedSize, this.#received));
    } else if (this.#sized && this.#received !== this.expectedSize) {
      this.destroy(new BlobVerificationError(this.digest, this.expectedSize, this.#received, 'size mismatch'));
    } else {
      const actual = this.#hashing ? digestOf(this.digest, this.#data.digest()) : undefined;
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
    const complaint = parseSizeComplaint(error.serverMessage);
    return complaint !== undefined && complaint.expected === this.#requestedSize && complaint.got === this.#received;
  }
}

/** Turns a failed FinishPipe into the error a caller can act on. */
function verificationFailure(error: Error, digest: string, expectedSize: number, received: number): Error {
  if (error instanceof RequestError && !error.retryable && error.kind === 'verification') {
    return new BlobVerificationError(digest, expectedSize, received, error.serverMessage);
  }
  return error instanceof ImageProxyError ? error : new ProtocolError(String(error));
}
