/**
 * Layers fetched in any order, applied strictly in order. The layer whose
 * turn it is streams from the proxy straight into the root filesystem; a
 * layer that arrives early is spooled to a file and applied from there as
 * soon as its predecessors are, then deleted. If its turn comes while it is
 * still arriving, it is applied from the file as the file grows, so the
 * largest layer, fetched first but rarely first in the image, is not applied
 * only after its last byte. Its bytes are applied as they arrive, as on the
 * direct path: the blob's verdict and the diff_id decide whether the layer
 * stands. Memory stays bounded by stream buffers; disk holds only layers
 * waiting their turn.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobStep } from '../oci-layout.js';
import { isRunning } from '../oci-layout.js';

/** Applies the layer at a position from a stream of its blob. */
export type ApplyLayer = (position: number, blob: Readable | AsyncIterable<Buffer>) => Promise<void>;

const SPOOL_PREFIX = '.cip-spool-';
/**
 * Bytes buffered per spool writer, and read per chunk when following one.
 * Small on purpose: with `jobs` layers spooling at once, each fresh buffer
 * is external memory that V8 collects late; 1 MiB chunks took a 1 GiB
 * extraction at jobs 4 past 64 MiB of RSS growth (bench scenario 4).
 */
const SPOOL_CHUNK = 128 * 1024;

/**
 * A directory for early layers, in `parent`; those that dead processes left
 * there are removed first.
 */
export async function createSpool(parent: string): Promise<string> {
  await mkdir(parent, { recursive: true });
  for (const name of await readdir(parent)) {
    const pid = new RegExp(`^${SPOOL_PREFIX.replace(/\./g, '\\.')}(\\d+)-`).exec(name)?.[1];
    if (pid !== undefined && !isRunning(Number(pid))) await rm(join(parent, name), { recursive: true, force: true });
  }
  return mkdtemp(join(parent, `${SPOOL_PREFIX}${process.pid}-`));
}

export class OrderedApplier {
  /** The position whose turn it is. */
  #next: number;
  /** Whether a layer is being applied (its turn taken). */
  #busy = false;
  /** Layers in the spool (arriving or arrived), by position. */
  readonly #spooled = new Map<number, SpoolFile>();
  /** Every spool file still open, to close when done. */
  readonly #open = new Set<SpoolFile>();
  #failure: { error: unknown } | undefined;
  #settle: { resolve(): void; reject(error: unknown): void } | undefined;
  /** Resolves when every position is applied; rejects with the first failure. */
  readonly finished: Promise<void>;
  /** Resolves when no layer is being applied (to clean up after a failure). */
  #idle: Promise<void> = Promise.resolve();
  /** Woken when the turn moves on or applying stops. */
  #moved: Array<() => void> = [];

  constructor(
    start: number,
    private readonly end: number,
    private readonly spoolDir: string,
    private readonly apply: ApplyLayer,
    private readonly onFailure: (error: unknown) => void,
  ) {
    this.#next = start;
    this.finished = new Promise<void>((resolve, reject) => (this.#settle = { resolve, reject }));
    this.finished.catch(() => {}); // observed by whoever awaits it; never unhandled
    if (start >= end) this.#settle!.resolve();
  }

  /** The position whose turn it is, or undefined when all are applied. */
  get next(): number | undefined {
    return this.#next < this.end ? this.#next : undefined;
  }

  /**
   * Reads one verified blob to its end: into the root filesystem when it is
   * its turn and nothing else is being applied, else into the spool (applied
   * later, in turn). Repeatable after a failure (a retry).
   */
  async take(position: number, blob: Readable, meter: BlobStep): Promise<void> {
    if (!this.#failure && !this.#busy && position === this.#next) {
      await this.#run(position, () => this.apply(position, meter(blob)));
      return;
    }
    const spool = await SpoolFile.create(join(this.spoolDir, `${position}-${randomBytes(4).toString('hex')}`));
    this.#open.add(spool);
    this.#spooled.set(position, spool);
    this.#pump(); // its turn may have come meanwhile
    try {
      await pipeline(blob, meter, spool.writable());
      spool.finish();
    } catch (error) {
      spool.fail(error);
      if (this.#spooled.get(position) === spool) this.#spooled.delete(position);
      await this.#remove(spool);
      throw error;
    }
  }

  /**
   * Resolves once the layer at `position` is applied, or applying stopped,
   * or `signal` aborted (failures are reported elsewhere: `finished`, the
   * jobs). A fetch slot held until then bounds the spool by the layers in
   * flight.
   */
  async applied(position: number, signal: AbortSignal): Promise<void> {
    const onAbort = (): void => this.#wakeWaiters();
    // Stryker disable next-line ObjectLiteral,BooleanLiteral: equivalent, `once` only says it: the finally removes the listener, and a signal aborts once
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (this.#next <= position && !this.#failure && !signal.aborted) await new Promise<void>((resolve) => this.#moved.push(resolve));
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  #wakeWaiters(): void {
    const waiters = this.#moved;
    this.#moved = [];
    for (const wake of waiters) wake();
  }

  /** Closes and removes the spool files left (after a failure). */
  async dispose(): Promise<void> {
    for (const spool of this.#open) await this.#remove(spool);
  }

  async #remove(spool: SpoolFile): Promise<void> {
    this.#open.delete(spool);
    await spool.remove();
  }

  /** Waits until no layer is being applied. */
  idle(): Promise<void> {
    return this.#idle;
  }

  /** Stops applying spooled layers (after a failure elsewhere). */
  stop(error: unknown): void {
    this.#failure ??= { error };
    this.#settle?.reject(error);
    this.#wakeWaiters();
  }

  async #run(position: number, work: () => Promise<void>): Promise<void> {
    this.#busy = true;
    let done!: () => void;
    this.#idle = new Promise((resolve) => (done = resolve));
    try {
      await work();
      this.#next = position + 1;
      if (this.#next >= this.end) this.#settle?.resolve();
      this.#wakeWaiters();
    } finally {
      this.#busy = false;
      done();
    }
    this.#pump();
  }

  /** Applies spooled layers whose turn has come, one at a time. */
  #pump(): void {
    const spool = this.#spooled.get(this.#next);
    if (this.#busy || this.#failure || spool === undefined) return;
    const position = this.#next;
    this.#spooled.delete(position);
    this.#run(position, async () => {
      try {
        await this.apply(position, spool.follow());
      } finally {
        if (spool.done) await this.#remove(spool);
      }
    }).catch((error: unknown) => {
      // The download failed, not the layer: the blob's retry applies it again.
      if (spool.failed) return this.#pump();
      this.stop(error);
      this.onFailure(error);
    });
  }
}

/**
 * A layer being written to a file, which a reader can follow while it grows:
 * {@link follow} yields what is written and waits for more until the writer
 * finishes (or fails).
 */
class SpoolFile {
  #written = 0;
  #done = false;
  #failure: { error: unknown } | undefined;
  #wake: (() => void) | undefined;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  static async create(path: string): Promise<SpoolFile> {
    return new SpoolFile(path, await open(path, 'wx+'));
  }

  get done(): boolean {
    return this.#done || this.#failure !== undefined;
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /** The file's writing end: each chunk is on disk (page cache) before it counts as written. */
  writable(): Writable {
    return new Writable({
      highWaterMark: SPOOL_CHUNK,
      write: (chunk: Buffer, _encoding, callback) => {
        this.handle.write(chunk, 0, chunk.length, this.#written).then(({ bytesWritten }) => {
          this.#written += bytesWritten;
          this.#notify();
          callback(bytesWritten === chunk.length ? null : new Error(`short write to ${this.path}`));
        }, callback);
      },
    });
  }

  finish(): void {
    this.#done = true;
    this.#notify();
  }

  fail(error: unknown): void {
    this.#failure ??= { error };
    this.#notify();
  }

  /** The bytes, as they are written, to the end. */
  async *follow(): AsyncGenerator<Buffer> {
    let at = 0;
    for (;;) {
      if (at < this.#written) {
        const buffer = Buffer.allocUnsafe(Math.min(this.#written - at, SPOOL_CHUNK));
        const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, at);
        at += bytesRead;
        yield buffer.subarray(0, bytesRead);
        continue;
      }
      if (this.#failure) throw this.#failure.error;
      if (this.#done) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  async remove(): Promise<void> {
    await this.handle.close().catch(() => {});
    await rm(this.path, { force: true });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
