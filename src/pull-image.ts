/**
 * {@link pullImage}: copies an image from the proxy into an OCI layout and
 * writes a manifest that describes exactly the bytes written:
 *  - the config comes from GetFullConfig, which serves the config of the
 *    manifest the proxy converted to OCI (for a Docker schema 2 source the
 *    converted config is a blob the source does not store);
 *  - the layers are the blobs the source can serve (`getLayerInfo`), which
 *    for `containers-storage:` are not the manifest's but the uncompressed
 *    layers under their diff_ids (on protocol 0.2.3 their sizes are learnt
 *    as they are fetched);
 *  - each layer's media type names the compression its bytes actually have
 *    (a `docker-archive:` layer is plain tar whatever the converted manifest
 *    says).
 * When any of this differs from the source, the manifest written is a new one
 * and {@link PulledImage.changes} says why.
 */
import type { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Compression } from './decompress.js';
import type { OpenedImage } from './images.js';
import { parseManifest } from './metadata.js';
import { MediaType, type ConvertedLayerInfo, type Descriptor, type ImageManifest } from './oci.js';
import { algorithmOf, checkTag, digestOf, HeadSniffer, type BlobStep, type OciLayoutWriter } from './oci-layout.js';
import { UNKNOWN_SIZE } from './protocol.js';
import type { ImageProxy } from './proxy.js';

/** What {@link pullImage} wrote. */
export interface PulledImage {
  /** The manifest written (or, without a layout, that would have been). */
  digest: string;
  size: number;
  manifest: ImageManifest;
  /** The digest of the manifest as the source stores it (GetManifest's). */
  sourceDigest: string;
  /**
   * Why the manifest written is not the source's, one sentence each; empty
   * when `digest === sourceDigest`.
   */
  changes: string[];
}

/** A blob {@link pullImage} fetches. */
export interface PullBlob {
  digest: string;
  /** -1 when not known before the transfer (`containers-storage:` on protocol 0.2.3). */
  size: number;
  /** `config` or the layer's index. */
  role: 'config' | number;
}

export interface PullOptions {
  /** The tag in index.json. Default `latest`. */
  tag?: string;
  /** Blobs fetched at a time (default 3). */
  jobs?: number;
  signal?: AbortSignal;
  /** Called before a blob is fetched (not for blobs the layout already has). */
  onBlobStart?(blob: PullBlob): void;
  /** Called once a blob is verified and in place. */
  onBlobDone?(blob: PullBlob): void;
  /** A step each fetched blob's bytes pass through (e.g. a progress meter). */
  step?(blob: PullBlob): BlobStep;
  /**
   * Runs one blob's transfer; may call `attempt` again to start it over
   * (e.g. with `withRetry`). Default: once.
   */
  transfer?(blob: PullBlob, attempt: () => Promise<void>): Promise<void>;
}

/**
 * Copies `image` into `layout` (or, with `null`, fetches and verifies every
 * blob and keeps nothing), tagged `options.tag`, and returns the manifest
 * written. See the module comment for what may make it differ from the
 * source's.
 */
export async function pullImage(proxy: ImageProxy, image: OpenedImage, layout: OciLayoutWriter | null, options: PullOptions = {}): Promise<PulledImage> {
  const signal = options.signal;
  const tag = options.tag ?? 'latest';
  if (layout) checkTag(tag);
  const { digest: sourceDigest, raw } = await proxy.fetchManifestRaw(image, { signal });
  const manifest = parseManifest(raw);
  const algorithm = algorithmOf(sourceDigest);
  const converted = digestOf(raw, algorithm) !== sourceDigest;
  const changes = converted ? [`the proxy converted the source's manifest to OCI`] : [];

  const served = servedLayers(manifest.layers, await proxy.getLayerInfo(image, { signal }));
  changes.push(...served.changes);

  /** Copies one blob (unless the layout has it); its compression, and its size once known. */
  const copy = async (blob: PullBlob, descriptor: Descriptor, blobSignal: AbortSignal | undefined): Promise<{ compression: Compression; size: number }> => {
    const stored = layout ? await layout.blobSize(descriptor.digest) : undefined;
    if (layout && stored !== undefined && (descriptor.size === UNKNOWN_SIZE || stored === descriptor.size)) {
      return { compression: await layout.blobCompression(descriptor.digest), size: stored };
    }
    let copied = { compression: 'none' as Compression, size: descriptor.size };
    const attempt = async (): Promise<void> => {
      const stream = await proxy.getBlob(image, descriptor.digest, descriptor.size, { signal: blobSignal });
      const step = options.step?.(blob);
      const compression = layout ? await layout.writeBlob(descriptor.digest, stream, { step, signal: blobSignal }) : await discard(stream, step, blobSignal);
      // Verified: a size that was unknown is the number of bytes received.
      copied = { compression, size: descriptor.size === UNKNOWN_SIZE ? stream.bytesReceived : descriptor.size };
    };
    options.onBlobStart?.(blob);
    await (options.transfer ? options.transfer(blob, attempt) : attempt());
    options.onBlobDone?.(blob);
    return copied;
  };

  // The config: GetFullConfig serves the config of the manifest GetManifest
  // served. It re-serialises the config as OCI, so for a manifest the proxy
  // did not convert it differs from the blob the manifest names whenever that
  // blob is not in Go's own JSON form; that blob is then the source's to serve.
  let config = manifest.config;
  const servedConfig = await proxy.fetchConfigRaw(image, { signal });
  const configAlgorithm = algorithmOf(config.digest);
  const configMatches = digestOf(servedConfig, configAlgorithm) === config.digest && servedConfig.length === config.size;
  if (configMatches || converted) {
    if (!configMatches) {
      const digest = digestOf(servedConfig, 'sha256');
      changes.push(`the proxy serves the config ${digest} (${servedConfig.length} bytes), not ${config.digest} (${config.size} bytes) that the converted manifest names`);
      config = { ...config, digest, size: servedConfig.length };
    }
    if (layout) await layout.writeBlobBytes(servedConfig, algorithmOf(config.digest));
  } else {
    await copy({ digest: config.digest, size: config.size, role: 'config' }, config, signal);
  }

  const copied = new Array<{ compression: Compression; size: number }>(served.layers.length);
  await forEachConcurrently(served.layers, options.jobs ?? 3, signal, async (layer, index, blobSignal) => {
    copied[index] = await copy({ digest: layer.digest, size: layer.size, role: index }, layer, blobSignal);
  });

  const layers = served.layers.map((descriptor, i) => {
    const { compression, size } = copied[i]!;
    // A layer whose size was unknown is described with the size of the bytes written.
    return { descriptor: descriptor.size === UNKNOWN_SIZE ? { ...descriptor, size } : descriptor, compression };
  });
  const written = writtenManifest(raw, manifest, config, layers);
  changes.push(...written.changes);
  // The source's own bytes keep the source's digest algorithm; anything new is sha256.
  const manifestAlgorithm = written.raw === raw && !converted ? algorithm : 'sha256';
  const digest = digestOf(written.raw, manifestAlgorithm);
  if (layout) {
    await layout.writeBlobBytes(written.raw, manifestAlgorithm);
    await layout.tag({ mediaType: written.manifest.mediaType ?? MediaType.ImageManifest, digest, size: written.raw.length }, tag);
  }
  return { digest, size: written.raw.length, manifest: written.manifest, sourceDigest, changes: digest === sourceDigest ? [] : changes };
}

/**
 * The layers to copy: the blobs the source serves (GetLayerInfo). Where one
 * is the manifest's layer (same digest and size) the manifest's descriptor is
 * kept; otherwise the served blob replaces it (without the manifest's
 * annotations, which described other bytes). A different number of blobs
 * replaces the manifest's layers altogether.
 */
export function servedLayers(manifestLayers: readonly Descriptor[], served: readonly ConvertedLayerInfo[]): { layers: Descriptor[]; changes: string[] } {
  const fromInfo = (info: ConvertedLayerInfo): Descriptor => ({ mediaType: info.mediaType, digest: info.digest, size: info.size });
  if (served.length !== manifestLayers.length) {
    return {
      layers: served.map(fromInfo),
      changes: [`the source serves ${served.length} layer blobs where its manifest lists ${manifestLayers.length}: those blobs replace the manifest's layers`],
    };
  }
  const changes: string[] = [];
  const layers = manifestLayers.map((layer, i) => {
    const info = served[i]!;
    if (info.digest === layer.digest && (info.size === layer.size || info.size === UNKNOWN_SIZE)) return layer;
    const size = info.size === UNKNOWN_SIZE ? '' : ` (${info.size} bytes)`; // unknown before it is fetched (containers-storage on 0.2.3)
    changes.push(`layer ${i}: the source serves ${info.digest}${size} instead of ${layer.digest} (${layer.size} bytes)`);
    return fromInfo(info);
  });
  return { layers, changes };
}

/** Tar layer media types, by family: OCI, OCI non-distributable, and their Docker counterparts. */
const LAYER_FAMILIES: Array<{ oci: string; names: RegExp }> = [
  { oci: MediaType.Layer, names: /^application\/vnd\.(?:oci\.image\.layer\.v1\.tar(?:\+(?:gzip|zstd))?|docker\.image\.rootfs\.diff\.tar(?:\.(?:gzip|zstd))?)$/ },
  {
    oci: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
    names: /^application\/vnd\.(?:oci\.image\.layer\.nondistributable\.v1\.tar(?:\+(?:gzip|zstd))?|docker\.image\.rootfs\.foreign\.diff\.tar(?:\.(?:gzip|zstd))?)$/,
  },
];

/**
 * The OCI media type for a tar layer declared as `mediaType` whose bytes have
 * `compression`: `application/vnd.oci.image.layer.v1.tar`, `+gzip` or
 * `+zstd` (Docker's types become OCI's, non-distributable stays so). Media
 * types that are not tar layers (artifacts, encrypted layers) are returned
 * unchanged.
 */
export function layerMediaType(mediaType: string, compression: Compression): string {
  const family = LAYER_FAMILIES.find((f) => f.names.test(mediaType));
  if (!family) return mediaType;
  return compression === 'none' ? family.oci : `${family.oci}+${compression}`;
}

const COMPRESSION_WORDS: Record<Compression, string> = { none: 'uncompressed tar', gzip: 'gzip', zstd: 'zstd' };

/**
 * The manifest that describes the blobs written: `config`, and each layer
 * with the media type of its compression. The source's bytes when nothing
 * differs (`raw` itself is returned), else a new serialisation.
 */
export function writtenManifest(
  raw: Buffer,
  manifest: ImageManifest,
  config: Descriptor,
  layers: ReadonlyArray<{ descriptor: Descriptor; compression: Compression }>,
): { raw: Buffer; manifest: ImageManifest; changes: string[] } {
  const changes: string[] = [];
  const described = layers.map(({ descriptor, compression }, i) => {
    const mediaType = layerMediaType(descriptor.mediaType, compression);
    if (mediaType === descriptor.mediaType) return descriptor;
    changes.push(`layer ${i} (${descriptor.digest}) is ${COMPRESSION_WORDS[compression]}: written as ${mediaType}, not ${descriptor.mediaType}`);
    return { ...descriptor, mediaType };
  });
  const same = config === manifest.config && described.length === manifest.layers.length && described.every((layer, i) => layer === manifest.layers[i]);
  if (same) return { raw, manifest, changes };
  const updated: ImageManifest = { ...manifest, config, layers: described };
  return { raw: Buffer.from(JSON.stringify(updated)), manifest: updated, changes };
}

/** Reads a verified stream to its end, keeping nothing; returns its compression. */
async function discard(stream: Readable, step: BlobStep | undefined, signal: AbortSignal | undefined): Promise<Compression> {
  const sniffer = new HeadSniffer();
  await pipeline(stream, sniffer.step(step), new Writable({ write: (_chunk, _encoding, done) => done() }), signal ? { signal } : {});
  return sniffer.compression;
}

/**
 * Runs `work` over `items`, at most `jobs` at a time. The first failure stops
 * new work and aborts the rest (through the signal `work` gets); it is thrown
 * once everything has settled, so nothing is left running.
 */
async function forEachConcurrently<T>(
  items: readonly T[],
  jobs: number,
  signal: AbortSignal | undefined,
  work: (item: T, index: number, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (!failure && !controller.signal.aborted && next < items.length) {
      const index = next++;
      try {
        await work(items[index]!, index, controller.signal);
      } catch (error) {
        if (!failure) {
          failure = { error };
          controller.abort(error);
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, worker));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (failure) throw failure.error;
  if (controller.signal.aborted) throw controller.signal.reason;
}
