/**
 * Layers fetched in any order, applied strictly in order. The layer whose
 * turn it is streams from the proxy straight into the root filesystem; a
 * layer that arrives early is spooled to a file (verified on the way in) and
 * applied from there as soon as its predecessors are, then deleted. Memory
 * stays bounded by stream buffers; disk holds only layers waiting their turn.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobStep } from '../oci-layout.js';
import { isRunning } from '../oci-layout.js';

/** Applies the layer at a position from a stream of its blob. */
export type ApplyLayer = (position: number, blob: Readable | AsyncIterable<Buffer>) => Promise<void>;

const SPOOL_PREFIX = '.cip-spool-';

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
  readonly #spooled = new Map<number, string>();
  #failure: { error: unknown } | undefined;
  #settle: { resolve(): void; reject(error: unknown): void } | undefined;
  /** Resolves when every position is applied; rejects with the first failure. */
  readonly finished: Promise<void>;
  /** Resolves when no layer is being applied (to clean up after a failure). */
  #idle: Promise<void> = Promise.resolve();

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
      await this.#run(position, () => this.apply(position, pipeSource(blob, meter)));
      return;
    }
    const path = join(this.spoolDir, `${position}-${randomBytes(4).toString('hex')}`);
    try {
      await pipeline(blob, meter, createWriteStream(path, { flags: 'wx' }));
    } catch (error) {
      await rm(path, { force: true });
      throw error;
    }
    this.#spooled.set(position, path);
    this.#pump();
  }

  /** Waits until no layer is being applied. */
  idle(): Promise<void> {
    return this.#idle;
  }

  /** Stops applying spooled layers (after a failure elsewhere). */
  stop(error: unknown): void {
    this.#failure ??= { error };
    this.#settle?.reject(error);
  }

  async #run(position: number, work: () => Promise<void>): Promise<void> {
    this.#busy = true;
    let done!: () => void;
    this.#idle = new Promise((resolve) => (done = resolve));
    try {
      await work();
      this.#next = position + 1;
      if (this.#next >= this.end) this.#settle?.resolve();
    } finally {
      this.#busy = false;
      done();
    }
    this.#pump();
  }

  /** Applies spooled layers whose turn has come, one at a time. */
  #pump(): void {
    const path = this.#spooled.get(this.#next);
    if (this.#busy || this.#failure || path === undefined) return;
    const position = this.#next;
    this.#spooled.delete(position);
    this.#run(position, async () => {
      try {
        await this.apply(position, createReadStream(path));
      } finally {
        await rm(path, { force: true });
      }
    }).catch((error: unknown) => {
      this.stop(error);
      this.onFailure(error);
    });
  }
}

/** The blob's bytes through the meter, as one source. */
function pipeSource(blob: Readable, meter: BlobStep): AsyncIterable<Buffer> {
  return meter(blob);
}
