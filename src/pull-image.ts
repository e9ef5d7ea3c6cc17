/**
 * {@link pullImage}: copies an image from the proxy into an OCI layout and
 * writes a manifest that describes exactly the bytes written (see
 * image-manifest.ts for how: the config from GetFullConfig, the layers the
 * source serves, media types from the bytes). When any of this differs from
 * the source, the manifest written is a new one and
 * {@link PulledImage.changes} says why.
 */
import type { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Compression } from './decompress.js';
import type { BlobSkippedEvent, ImageBlob } from './image-events.js';
import { imageCall, largestFirst, runJobs, transferBlob, withSourceImage, type ImageCall, type ImageOptions, type ImageSource } from './image-session.js';
import type { OpenedImage } from './images.js';
import { consistentManifest, servableImage } from './image-manifest.js';
import { MediaType, type ImageManifest } from './oci.js';
import { algorithmOf, checkTag, HeadSniffer, OciLayoutWriter, type BlobStep } from './oci-layout.js';
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
  const servable = await servableImage(proxy, image, signal);
  const { config, configBytes: servedConfig } = servable;

  const blobs: PulledBlob[] = [
    { digest: config.digest, size: config.size, role: 'config', fetched: true },
    ...servable.layers.map((layer, index) => ({ digest: layer.digest, size: layer.size, role: index, fetched: true })),
  ];
  reporter.resolved(image.reference, servable.sourceDigest, blobs, call.jobs);

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
  if (servedConfig) {
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

  const layers = servable.layers.map((descriptor, i) => {
    const { compression, size } = copied[i]!;
    // A layer whose size was unknown is described with the size of the bytes written.
    return { descriptor: descriptor.size === UNKNOWN_SIZE ? { ...descriptor, size } : descriptor, compression };
  });
  const written = consistentManifest(servable, layers);
  if (layout) {
    await layout.writeBlobBytes(written.raw, algorithmOf(written.digest));
    await layout.tag({ mediaType: written.manifest.mediaType ?? MediaType.ImageManifest, digest: written.digest, size: written.raw.length }, tag);
  }
  reporter.done(servable.sourceDigest);
  return {
    manifestDigest: written.digest,
    size: written.raw.length,
    manifest: written.manifest,
    tag,
    sourceDigest: servable.sourceDigest,
    changes: written.changes,
    blobs: blobs.map((blob, i) => (i > 0 && blob.size === UNKNOWN_SIZE ? { ...blob, size: copied[i - 1]!.size } : blob)),
  };
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
