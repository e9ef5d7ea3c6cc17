/**
 * {@link extractImage}: an image's root filesystem in a directory, layers
 * fetched in parallel (largest first, the next one to apply ahead of them)
 * and applied strictly in order by one {@link RootfsWriter}; a state file
 * beside the directory makes it resumable and a finished one a no-op.
 */
import { readdir, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { InvalidArgumentError } from './errors.js';
import type { ImageBlob } from './image-events.js';
import { imageCall, largestFirst, runJobs, transferBlob, withSourceImage, type ImageCall, type ImageOptions, type ImageSource } from './image-session.js';
import type { OpenedImage } from './images.js';
import type { LayerWithDiffId } from './metadata.js';
import type { ImageProxy } from './proxy.js';
import { defaultStatePath, readState, sameLayers, writeState, type ExtractState } from './extract/extract-state.js';
import { createSpool, OrderedApplier } from './extract/ordered-apply.js';
import { RootfsWriter, type ExtractionReport, type RootfsWriterOptions } from './extract/rootfs-writer.js';

/** Options of {@link extractImage}. */
export interface ExtractImageOptions extends ImageOptions, Omit<RootfsWriterOptions, 'resumeFrom'> {
  /**
   * Only these layers (0-based indexes or layer digests), applied in image
   * order. Default: all.
   */
  layers?: ReadonlyArray<number | string>;
  /**
   * Where layers that arrive before their turn wait, as files (in a
   * temporary directory made there and removed after). Default: beside the
   * target directory, so they stay on its filesystem.
   */
  spoolDir?: string;
  /**
   * The state file that records which layers the directory holds. Default:
   * `.NAME.extract-state.json` beside the directory `NAME`.
   */
  stateFile?: string;
}

/** A layer as {@link extractImage} left it. */
export interface ExtractedLayer {
  /** Its index in the image. */
  index: number;
  /** The layer blob's digest. */
  digest: string;
  /** The digest of its uncompressed tar (checked while applying). */
  diffId: string;
  /** False when a previous run into the same directory had applied it. */
  applied: boolean;
}

/** What {@link extractImage} did. */
export interface ExtractedImage {
  /** The digest of the manifest as the source stores it. */
  manifestDigest: string;
  /** The layers extracted, in the order applied (image order). */
  layers: ExtractedLayer[];
  /** True when the directory already held these layers, finished: nothing was fetched. */
  alreadyComplete: boolean;
  /** What the writer reports (entries, xattrs not applied), over all runs. */
  report: ExtractionReport;
}

/**
 * Extracts the image `reference` names into `dir` (created if needed, and
 * empty unless `allowNonEmpty`), as container runtimes do, via
 * {@link RootfsWriter}: each layer is checked against its diff_id.
 *
 * Layers are fetched `jobs` at a time and applied strictly in image order:
 * the layer whose turn it is streams straight into `dir`; one that arrives
 * early waits as a verified file in `spoolDir`. A state file keyed by the
 * layers' diff_ids records each layer once it is whole: extracting the same
 * image into a directory a previous run finished does nothing, and a run
 * that was interrupted (even by SIGKILL) carries on from its last whole
 * layer, applying the one it was in the middle of again from its start.
 *
 * @throws {InvalidArgumentError} a bad option or layer selector.
 * @throws {ExtractionError} a hostile entry, a non-empty `dir`, or the size limit.
 * @throws {BlobVerificationError} a layer does not match its digest or diff_id;
 *   and every error of {@link ImageProxy.getBlob}. On failure or abort the
 *   spool is removed; `dir` holds the layers recorded as whole plus part of
 *   the next, which the next run applies again.
 */
export async function extractImage(source: ImageSource, reference: string, dir: string, options: ExtractImageOptions = {}): Promise<ExtractedImage> {
  const call = imageCall(options);
  if (typeof dir !== 'string' || dir === '') throw new InvalidArgumentError(`dir must be a directory path, got ${String(dir)}`);
  return withSourceImage(source, reference, call.signal, (proxy, image) => extractOpened(proxy, image, resolve(dir), options, call));
}

async function extractOpened(proxy: ImageProxy, image: OpenedImage, dir: string, options: ExtractImageOptions, call: ImageCall): Promise<ExtractedImage> {
  const { signal, reporter } = call;
  const { digest: manifestDigest } = await proxy.fetchManifestRaw(image, { signal });
  const chosen = selectLayers(await proxy.getLayerDiffIds(image, { signal }), options.layers);
  const blobs: ImageBlob[] = chosen.map(({ layer, index }) => ({ digest: layer.digest, size: layer.size, role: index }));
  reporter.resolved(image.reference, manifestDigest, blobs, call.jobs);

  const statePath = options.stateFile ?? defaultStatePath(dir);
  const diffIds = chosen.map(({ layer }) => layer.diffId);
  const recorded = await readState(statePath);
  const resumable = recorded && sameLayers(recorded, diffIds) && (await hasContent(dir)) ? recorded : undefined;
  const result = (applied: number, alreadyComplete: boolean, report: ExtractionReport): ExtractedImage => ({
    manifestDigest,
    layers: chosen.map(({ layer, index }, position) => ({ index, digest: layer.digest, diffId: layer.diffId, applied: position >= applied })),
    alreadyComplete,
    report,
  });
  const reportOf = (state: ExtractState): ExtractionReport => ({
    entries: state.checkpoint.entries,
    skippedXattrs: state.checkpoint.skippedXattrs.map(([name, entries, reason]) => ({ name, entries, reason })),
  });

  const start = resumable?.applied ?? 0;
  for (const blob of blobs.slice(0, start)) reporter.skipped(blob, 'applied');
  if (resumable?.complete) {
    reporter.done(manifestDigest);
    return result(start, true, reportOf(resumable));
  }

  const writer = new RootfsWriter(dir, { ...pickWriterOptions(options), ...(resumable && { resumeFrom: resumable.checkpoint }) });
  const state: ExtractState = { version: 1, diffIds, applied: start, complete: false, checkpoint: writer.checkpoint() };
  // Recorded before the first byte lands in dir: a crash from here on is resumable.
  if (!resumable) await writer.prepare();
  await writeState(statePath, state);

  const spool = await createSpool(options.spoolDir ?? dirname(dir));
  const failed = new AbortController();
  const applier = new OrderedApplier(
    start,
    chosen.length,
    spool,
    async (position, blob) => {
      const { layer, index } = chosen[position]!;
      const { diffId } = await writer.applyLayer(blob, { diffId: layer.diffId });
      await writeState(statePath, { ...state, applied: position + 1, checkpoint: writer.checkpoint() });
      reporter.layerApplied(index, layer.digest, diffId);
    },
    (error) => failed.abort(error),
  );
  const jobsSignal = signal ? AbortSignal.any([signal, failed.signal]) : failed.signal;
  try {
    const order = largestFirst(blobs.slice(start)).map((i) => i + start);
    const taken = new Set<number>();
    const nextToFetch = (): number | undefined => {
      // The layer whose turn it is goes first (it streams straight in), then the largest.
      const turn = applier.next;
      const position = turn !== undefined && !taken.has(turn) ? turn : order.find((p) => !taken.has(p));
      if (position !== undefined) taken.add(position);
      return position;
    };
    await runJobs(chosen.length - start, call.jobs, jobsSignal, nextToFetch, async (position, jobSignal) => {
      await transferBlob(proxy, image, blobs[position]!, call, jobSignal, (stream, meter) => applier.take(position, stream, meter));
      // The slot stays taken until the layer is applied: at most `jobs` layers
      // are spooled. The layer whose turn it is always holds one (nextToFetch).
      await applier.applied(position, jobSignal);
    }).catch((error: unknown) => {
      throw failed.signal.aborted ? failed.signal.reason : error;
    });
    await applier.finished;
  } catch (error) {
    applier.stop(error);
    await applier.idle();
    throw error;
  } finally {
    await applier.dispose();
    await rm(spool, { recursive: true, force: true });
  }
  const report = await writer.finish();
  await writeState(statePath, { ...state, applied: chosen.length, complete: true, checkpoint: writer.checkpoint() });
  reporter.done(manifestDigest);
  return result(start, false, report);
}

/** Only the writer's own options (so an option meant for the image never reaches it). */
function pickWriterOptions(options: RootfsWriterOptions): RootfsWriterOptions {
  const { preserveOwnership, allowDeviceNodes, allowNonEmpty, maxUncompressedBytes } = options;
  return {
    ...(preserveOwnership !== undefined && { preserveOwnership }),
    ...(allowDeviceNodes !== undefined && { allowDeviceNodes }),
    ...(allowNonEmpty !== undefined && { allowNonEmpty }),
    ...(maxUncompressedBytes !== undefined && { maxUncompressedBytes }),
  };
}

async function hasContent(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length > 0;
  } catch (error) {
    if (['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) return false;
    throw error;
  }
}

/**
 * The layers `wanted` names (indexes or digests), in image order; all when
 * undefined.
 * @throws {InvalidArgumentError} a selector names no layer.
 */
export function selectLayers(layers: LayerWithDiffId[], wanted: ReadonlyArray<number | string> | undefined): Array<{ layer: LayerWithDiffId; index: number }> {
  const all = layers.map((layer, index) => ({ layer, index }));
  if (wanted === undefined) return all;
  if (!Array.isArray(wanted)) throw new InvalidArgumentError(`layers must be an array of layer indexes or digests, got ${String(wanted)}`);
  const chosen = new Set<number>();
  for (const selector of wanted) {
    const index = typeof selector === 'number' ? selector : layers.findIndex((layer) => layer.digest === selector);
    if (!Number.isSafeInteger(index) || index < 0 || index >= layers.length) {
      throw new InvalidArgumentError(`layer ${String(selector)}: the image has ${layers.length} layers (0-${layers.length - 1}) and no such digest`);
    }
    chosen.add(index);
  }
  return all.filter(({ index }) => chosen.has(index));
}
