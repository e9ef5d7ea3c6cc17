/**
 * A blob pipe read off the main thread: the addon's BlobReader reads the pipe
 * on a thread of its own (one per pipe) and hashes the bytes there with the
 * OpenSSL inside Node, so the event loop only hands over buffers and pushes
 * chunks. It stands in for the `net.Socket` a pipe used to be read with, and
 * keeps its shape: `data`, `end` and `error` events, pause/resume, destroy.
 *
 * Backpressure: the thread reads only while the consumer has us resumed, one
 * block ahead of it (it reads and hashes the next block while the loop hands
 * out the last); a paused consumer holds the reads (and skopeo's writer, once
 * the pipe is full).
 *
 * Buffers: a read fills a 256 KiB block of the addon's. A full (or mostly
 * full) one is handed to the consumer as a Buffer over the block, which goes
 * back to the addon's pool once that Buffer is garbage collected; a small one
 * is copied into a right-sized Buffer and its block read into again, so a
 * consumer that holds many small chunks never pins a block for each. (A fresh
 * Buffer per chunk cost more CPU than the hashing; 1 MiB blocks let dead
 * chunks pile up between collections: bench/RESULTS.md.)
 */
import { createHash, type Hash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { native, type NativeBlobReader } from '../native.js';

/** Whether the addon can hash off the main thread (it found SHA-2 in the Node process). */
export const offThreadHashing: boolean = native.blobHashAvailable;

export interface BlobPipeOptions {
  /** Hash the bytes with this node:crypto algorithm (`sha256`, …); {@link BlobPipe.digest} gives the hex. */
  algorithm?: string | undefined;
  /** Hash on the reader thread (default: where the addon can); false hashes on the main thread. */
  hashOffThread?: boolean;
}

export interface BlobPipe {
  on(event: 'data', listener: (chunk: Buffer) => void): this;
  on(event: 'end', listener: () => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
}

/** Reads a received pipe fd to its end off the main thread; made paused. It owns the fd. */
export class BlobPipe extends EventEmitter {
  readonly #reader: NativeBlobReader;
  /** Main-thread hash: where the addon cannot hash, or when asked not to. */
  readonly #jsHash: Hash | undefined;
  readonly #hashing: boolean;
  #paused = true; // until the stream's first _read()
  #ended = false;

  constructor(fd: number, options: BlobPipeOptions = {}) {
    super();
    const offThread = options.algorithm !== undefined && (options.hashOffThread ?? offThreadHashing);
    this.#hashing = options.algorithm !== undefined;
    this.#jsHash = options.algorithm !== undefined && !offThread ? createHash(options.algorithm) : undefined;
    this.#reader = new native.BlobReader(fd, offThread ? options.algorithm! : null, (error, chunk) => this.#onRead(error, chunk));
  }

  /** Stops the reads and the chunks (none is emitted while paused). */
  pause(): this {
    this.#flow(false);
    return this;
  }

  resume(): this {
    this.#flow(true);
    return this;
  }

  isPaused(): boolean {
    return this.#paused;
  }

  /** The hex digest of every byte read; only once `end` was emitted, and only when hashing. */
  digest(): string {
    if (!this.#ended || !this.#hashing) throw new Error('BlobPipe.digest(): not hashing, or the pipe has not ended');
    return this.#jsHash ? this.#jsHash.digest('hex') : this.#reader.digest();
  }

  /** Stops the reader thread and closes the fd; no event follows. Idempotent. */
  destroy(): void {
    this.#reader.close();
  }

  // The addon keeps the rules for what comes after the end or destroy():
  // setFlowing() then does nothing, close() may be called again, and no
  // callback comes once closed. Guards here would repeat them untestably.
  #flow(flowing: boolean): void {
    this.#paused = !flowing;
    this.#reader.setFlowing(flowing);
  }

  #onRead(error: Error | undefined, chunk: Buffer | null | undefined): void {
    if (error) {
      this.destroy(); // not #ended: a failed read has no digest
      this.emit('error', error);
      return;
    }
    if (!chunk) {
      this.#ended = true;
      this.emit('end');
      return;
    }
    this.#jsHash?.update(chunk);
    this.emit('data', chunk);
  }
}
