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
import type { BlobSkippedEvent, ImageBlob } from './image-events.js';
import { imageCall, largestFirst, runJobs, transferBlob, withSourceImage, type ImageCall, type ImageOptions, type ImageSource } from './image-session.js';
import type { OpenedImage } from './images.js';
import { parseManifest } from './metadata.js';
import { MediaType, type ConvertedLayerInfo, type Descriptor, type ImageManifest } from './oci.js';
import { algorithmOf, checkTag, digestOf, HeadSniffer, OciLayoutWriter, type BlobStep } from './oci-layout.js';
import { UNKNOWN_SIZE } from './protocol.js';
import type { ImageProxy } from './proxy.js';

/** A blob of the image and whether this call fetched it. */
export interface PulledBlob extends ImageBlob {
  /** False when the layout already held it (digest checked): see {@link BlobSkippedEvent}. */
  fetched: boolean;
}

/** What {@link pullImage} wrote. */
export interface PulledImage {
  /** The digest of the manifest written (or, without a layout, that would have been). */
  manifestDigest: string;
  /** Its size in bytes. */
  size: number;
  /** The manifest written. */
  manifest: ImageManifest;
  /** The tag it was given in index.json. */
  tag: string;
  /** The digest of the manifest as the source stores it (GetManifest's). */
  sourceDigest: string;
  /**
   * Why the manifest written is not the source's, one sentence each; empty
   * when `manifestDigest === sourceDigest`.
   */
  changes: string[];
  /** The config, then the layers in image order, as written. */
  blobs: PulledBlob[];
}

/** Options of {@link pullImage}. */
export interface PullImageOptions extends ImageOptions {
  /** The tag in index.json (image-spec's ref.name grammar). Default `latest`. */
  tag?: string;
}

/**
 * Copies the image `reference` names into the OCI image layout at
 * `layoutDir` (created if needed; an existing layout gains the image and
 * keeps the rest), tagged `options.tag`, and returns the manifest written.
 * With `layoutDir` null, fetches and verifies every blob and keeps nothing.
 *
 * Blobs are fetched `jobs` at a time, largest first, each into a temporary
 * file renamed into place once verified. Blobs the layout already holds are
 * hashed and skipped when whole. Temporary files of a pull that was killed
 * are removed when the next pull opens the layout, so an interrupted pull is
 * resumed by running it again: it fetches only what is missing.
 *
 * The manifest written describes exactly the bytes written (see the module
 * comment), so it differs from the source's when the proxy converted it.
 *
 * @throws {InvalidArgumentError} a bad option or tag.
 * @throws {OciLayoutError} `layoutDir` holds a layout this cannot write into.
 * @throws {ImageNotFoundError} the image is not there; and every error of
 *   {@link ImageProxy.getBlob}. On failure or abort, nothing half-written
 *   stays: blobs already in place are complete and verified.
 */
export async function pullImage(source: ImageSource, reference: string, layoutDir: string | null, options: PullImageOptions = {}): Promise<PulledImage> {
  const call = imageCall(options);
  const tag = options.tag ?? 'latest';
  checkTag(tag);
  const layout = layoutDir === null ? null : await OciLayoutWriter.open(layoutDir);
  await layout?.removeStaleTemporaries();
  return withSourceImage(source, reference, call.signal, (proxy, image) => copyImage(proxy, image, layout, tag, call));
}

/** {@link pullImage} on an opened image. */
async function copyImage(proxy: ImageProxy, image: OpenedImage, layout: OciLayoutWriter | null, tag: string, call: ImageCall): Promise<PulledImage> {
  const { signal, reporter } = call;
  const { digest: sourceDigest, raw } = await proxy.fetchManifestRaw(image, { signal });
  const manifest = parseManifest(raw);
  const algorithm = algorithmOf(sourceDigest);
  const converted = digestOf(raw, algorithm) !== sourceDigest;
  const changes = converted ? [`the proxy converted the source's manifest to OCI`] : [];

  const served = servedLayers(manifest.layers, await proxy.getLayerInfo(image, { signal }));
  changes.push(...served.changes);

  // The config: GetFullConfig serves the config of the manifest GetManifest
  // served. It re-serialises the config as OCI, so for a manifest the proxy
  // did not convert it differs from the blob the manifest names whenever that
  // blob is not in Go's own JSON form; that blob is then the source's to serve.
  let config = manifest.config;
  const servedConfig = await proxy.fetchConfigRaw(image, { signal });
  const configMatches = digestOf(servedConfig, algorithmOf(config.digest)) === config.digest && servedConfig.length === config.size;
  const configServed = configMatches || converted;
  if (configServed && !configMatches) {
    const digest = digestOf(servedConfig, 'sha256');
    changes.push(`the proxy serves the config ${digest} (${servedConfig.length} bytes), not ${config.digest} (${config.size} bytes) that the converted manifest names`);
    config = { ...config, digest, size: servedConfig.length };
  }

  const blobs: PulledBlob[] = [
    { digest: config.digest, size: config.size, role: 'config', fetched: true },
    ...served.layers.map((layer, index) => ({ digest: layer.digest, size: layer.size, role: index, fetched: true })),
  ];
  reporter.resolved(image.reference, sourceDigest, blobs, call.jobs);

  /** Copies one blob (unless the layout has it whole); its compression, and its size once known. */
  const copy = async (blob: PulledBlob, blobSignal: AbortSignal): Promise<{ compression: Compression; size: number }> => {
    if (layout && (await layout.hasVerifiedBlob(blob.digest, blob.size))) {
      blob.fetched = false;
      reporter.skipped(blob, 'present');
      const size = (await layout.blobSize(blob.digest))!;
      return { compression: await layout.blobCompression(blob.digest), size };
    }
    let compression: Compression = 'none';
    const bytes = await transferBlob(proxy, image, blob, call, blobSignal, async (stream, meter) => {
      compression = layout ? await layout.writeBlob(blob.digest, stream, { step: meter, signal: blobSignal }) : await discard(stream, meter, blobSignal);
    });
    // Verified: a size that was unknown is the number of bytes received.
    return { compression, size: blob.size === UNKNOWN_SIZE ? bytes : blob.size };
  };

  const configBlob = blobs[0]!;
  if (configServed) {
    if (layout && (await layout.hasVerifiedBlob(config.digest, config.size))) {
      configBlob.fetched = false;
      reporter.skipped(configBlob, 'present');
    } else {
      // Already in memory (GetFullConfig): its transfer is the write.
      const progress = reporter.attempt(configBlob, 1);
      for await (const _ of progress.meter(once(servedConfig)));
      if (layout) await layout.writeBlobBytes(servedConfig, algorithmOf(config.digest));
      progress.done();
    }
  } else {
    await copy(configBlob, signal ?? new AbortController().signal);
  }

  const layerBlobs = blobs.slice(1);
  const copied = new Array<{ compression: Compression; size: number }>(layerBlobs.length);
  const order = largestFirst(layerBlobs);
  await runJobs(layerBlobs.length, call.jobs, signal, () => order.shift(), async (index, blobSignal) => {
    copied[index] = await copy(layerBlobs[index]!, blobSignal);
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
  const manifestDigest = digestOf(written.raw, manifestAlgorithm);
  if (layout) {
    await layout.writeBlobBytes(written.raw, manifestAlgorithm);
    await layout.tag({ mediaType: written.manifest.mediaType ?? MediaType.ImageManifest, digest: manifestDigest, size: written.raw.length }, tag);
  }
  reporter.done(sourceDigest);
  return {
    manifestDigest,
    size: written.raw.length,
    manifest: written.manifest,
    tag,
    sourceDigest,
    changes: manifestDigest === sourceDigest ? [] : changes,
    blobs: blobs.map((blob, i) => (i > 0 && blob.size === UNKNOWN_SIZE ? { ...blob, size: copied[i - 1]!.size } : blob)),
  };
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

async function* once(chunk: Buffer): AsyncGenerator<Buffer> {
  yield chunk;
}

/** Reads a verified stream to its end, keeping nothing; returns its compression. */
async function discard(stream: Readable, step: BlobStep | undefined, signal: AbortSignal | undefined): Promise<Compression> {
  const sniffer = new HeadSniffer();
  await pipeline(stream, sniffer.step(step), new Writable({ write: (_chunk, _encoding, done) => done() }), signal ? { signal } : {});
  return sniffer.compression;
}
