/**
 * Progress of {@link pullImage} and {@link extractImage}: typed events,
 * delivered to one `onProgress` callback, and the reporter that emits them.
 *
 * Why a callback and not an EventEmitter or an async iterator: the work is one
 * promise (its result and its failure come from `await`), and progress is a
 * side channel that must never slow the transfer down. A callback is
 * synchronous and typed (`switch (event.type)` narrows it); an EventEmitter
 * would have to be handed out before the promise and brings its own `error`
 * semantics; an async iterator would either hold the transfer back while the
 * consumer is slow (backpressure) or buffer without bound. A caller who wants
 * an iterator or an emitter builds one from the callback in three lines.
 */
import type { BlobStep } from './oci-layout.js';
import type { RetryEvent } from './retry.js';

/** What a blob is to the image: its config, or the layer at this index (0-based, in image order). */
export type BlobRole = 'config' | number;

/** A blob of the image, as the events name it. */
export interface ImageBlob {
  /** The blob's digest. */
  digest: string;
  /** Its size in bytes; -1 when not known before the transfer (`containers-storage:` on protocol 0.2.3). */
  size: number;
  /** `config`, or the layer's index in the image. */
  role: BlobRole;
}

/** The image is open and its blobs are known; nothing has been fetched yet. */
export interface ResolvedEvent {
  /** Always `resolved`. */
  type: 'resolved';
  /** The reference the image was opened with. */
  reference: string;
  /** The digest of the manifest as the source stores it. */
  manifestDigest: string;
  /** The blobs this call deals with (each gets either `blob-skipped` or `blob-start` … `blob-done`). */
  blobs: ImageBlob[];
  /** The sum of the sizes of `blobs` that are known. */
  totalBytes: number;
  /** Blobs fetched at a time. */
  jobs: number;
}

/** A blob's transfer starts (again, after a `blob-retry`). */
export interface BlobStartEvent extends ImageBlob {
  /** Always `blob-start`. */
  type: 'blob-start';
  /** 1 for the first attempt. */
  attempt: number;
}

/** Bytes of a blob have arrived; at most every `progressInterval` ms per blob. */
export interface BlobProgressEvent extends ImageBlob {
  /** Always `blob-progress`. */
  type: 'blob-progress';
  /** Bytes received so far in this attempt. */
  bytes: number;
  /** Bytes per second since this attempt started. */
  bytesPerSecond: number;
}

/** A blob is not fetched: the layout already holds it (digest checked), or a previous run applied the layer. */
export interface BlobSkippedEvent extends ImageBlob {
  /** Always `blob-skipped`. */
  type: 'blob-skipped';
  /** `present`: a verified copy is in the layout; `applied`: a previous extraction into the directory applied it. */
  reason: 'present' | 'applied';
}

/** A blob's transfer failed with a retryable error and starts over after `delayMs`. */
export interface BlobRetryEvent extends ImageBlob {
  /** Always `blob-retry`. */
  type: 'blob-retry';
  /** The attempt about to start (2 for the first retry). */
  attempt: number;
  /** Why the previous attempt failed. */
  error: Error;
  /** How long before the next attempt starts, in ms. */
  delayMs: number;
}

/** A blob arrived whole and verified (and, for a pull, is in the layout). */
export interface BlobDoneEvent extends ImageBlob {
  /** Always `blob-done`. */
  type: 'blob-done';
  /** The bytes received (the blob's size). */
  bytes: number;
  /** How long the successful attempt took, in seconds. */
  seconds: number;
}

/** {@link extractImage} applied a layer to the directory (strictly in image order). */
export interface LayerAppliedEvent {
  /** Always `layer-applied`. */
  type: 'layer-applied';
  /** The layer's index in the image. */
  index: number;
  /** The layer blob's digest. */
  digest: string;
  /** The digest of its uncompressed tar, checked against the config. */
  diffId: string;
}

/** The call succeeded; this is the last event. */
export interface DoneEvent {
  /** Always `done`. */
  type: 'done';
  /** The digest of the manifest as the source stores it. */
  manifestDigest: string;
  /** Bytes fetched from the proxy. */
  fetchedBytes: number;
  /** Blobs fetched, and blobs skipped. */
  fetched: number;
  /** Blobs not fetched (see {@link BlobSkippedEvent}). */
  skipped: number;
  /** Wall time of the call, in seconds. */
  seconds: number;
}

/** Every event {@link pullImage} and {@link extractImage} report, told apart by `type`. */
export type ImageProgressEvent =
  | ResolvedEvent
  | BlobStartEvent
  | BlobProgressEvent
  | BlobSkippedEvent
  | BlobRetryEvent
  | BlobDoneEvent
  | LayerAppliedEvent
  | DoneEvent;

/** The progress options of {@link pullImage} and {@link extractImage}. */
export interface ProgressOptions {
  /**
   * Called synchronously with each event, in order. It must not throw (an
   * exception is reported as an uncaught exception, not as the call's failure)
   * and should return quickly: the transfer waits for it.
   */
  onProgress?: (event: ImageProgressEvent) => void;
  /** Minimum ms between two `blob-progress` events of one blob. Default 100. */
  progressInterval?: number;
}

/** Emits the events of one call; the one place that builds them. @internal */
export class ProgressReporter {
  readonly #listener: ((event: ImageProgressEvent) => void) | undefined;
  readonly #interval: number;
  readonly #started = Date.now();
  #fetchedBytes = 0;
  #fetched = 0;
  #skipped = 0;

  constructor(options: ProgressOptions) {
    this.#listener = options.onProgress;
    this.#interval = options.progressInterval ?? 100;
  }

  emit(event: ImageProgressEvent): void {
    if (!this.#listener) return;
    try {
      this.#listener(event);
    } catch (error) {
      // A broken listener must not turn into a failed or half-written image.
      queueMicrotask(() => {
        throw error;
      });
    }
  }

  resolved(reference: string, manifestDigest: string, blobs: ImageBlob[], jobs: number): void {
    const totalBytes = blobs.reduce((sum, blob) => sum + Math.max(blob.size, 0), 0);
    this.emit({ type: 'resolved', reference, manifestDigest, blobs: blobs.map((blob) => ({ ...blob })), totalBytes, jobs });
  }

  skipped(blob: ImageBlob, reason: BlobSkippedEvent['reason']): void {
    this.#skipped++;
    this.emit({ type: 'blob-skipped', ...blobFields(blob), reason });
  }

  retry(blob: ImageBlob, event: RetryEvent): void {
    this.emit({ type: 'blob-retry', ...blobFields(blob), attempt: event.attempt, error: event.error, delayMs: event.delayMs });
  }

  /**
   * Starts an attempt at `blob`: emits `blob-start` and returns the step its
   * bytes pass through (it emits `blob-progress`) and `done`, which emits
   * `blob-done`.
   */
  attempt(blob: ImageBlob, attempt: number): { meter: BlobStep; done(): void } {
    const started = Date.now();
    let bytes = 0;
    let last = 0;
    this.emit({ type: 'blob-start', ...blobFields(blob), attempt });
    const reporter = this;
    return {
      meter: async function* (source) {
        for await (const chunk of source) {
          bytes += (chunk as Buffer).length;
          const now = Date.now();
          if (now - last >= reporter.#interval) {
            last = now;
            const bytesPerSecond = Math.round(bytes / Math.max((now - started) / 1000, 0.001));
            reporter.emit({ type: 'blob-progress', ...blobFields(blob), bytes, bytesPerSecond });
          }
          yield chunk as Buffer;
        }
      },
      done: () => {
        this.#fetched++;
        this.#fetchedBytes += bytes;
        this.emit({ type: 'blob-done', ...blobFields(blob), bytes, seconds: (Date.now() - started) / 1000 });
      },
    };
  }

  layerApplied(index: number, digest: string, diffId: string): void {
    this.emit({ type: 'layer-applied', index, digest, diffId });
  }

  done(manifestDigest: string): void {
    this.emit({
      type: 'done',
      manifestDigest,
      fetchedBytes: this.#fetchedBytes,
      fetched: this.#fetched,
      skipped: this.#skipped,
      seconds: (Date.now() - this.#started) / 1000,
    });
  }
}

function blobFields(blob: ImageBlob): ImageBlob {
  return { digest: blob.digest, size: blob.size, role: blob.role };
}
