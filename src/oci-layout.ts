/**
 * OCI image layouts (image-spec 1.1, image-layout): blobs under
 * `blobs/ALG/HEX`, the `oci-layout` file, and `index.json` entries tagged with
 * `org.opencontainers.image.ref.name`; every file goes in under a temporary
 * name and is renamed into place, so a failed write leaves nothing half done.
 *
 * And {@link pullImage}, which copies an image from the proxy into a layout
 * and writes a manifest that describes exactly the bytes written:
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
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { detectCompression, type Compression } from './decompress.js';
import { ImageProxyError, InvalidArgumentError, ProtocolError } from './errors.js';
import { MediaType, type ConvertedLayerInfo, type Descriptor, type ImageManifest } from './oci.js';
import { UNKNOWN_SIZE } from './protocol.js';
import type { ImageProxy, OpenedImage } from './proxy.js';
import { hashAlgorithm } from './streams.js';

/** The annotation that names a manifest in `index.json` (its tag). */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

const HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
/** image-spec's grammar for ref.name: components of alphanumerics joined by separators. */
const REF_NAME = /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;

/** An OCI layout that cannot be written: a broken index.json, an unknown layout version. */
export class OciLayoutError extends ImageProxyError {
  override name = 'OciLayoutError';
  constructor(
    /** The layout directory. */
    readonly layout: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`OCI layout ${layout}: ${message}`, options);
  }
}

/** A pipeline step bytes pass through, e.g. a progress meter. */
export type BlobStep = (source: AsyncIterable<Buffer>) => AsyncIterable<Buffer>;

/** Writes blobs, manifests and tags into an OCI image layout directory. */
export class OciLayoutWriter {
  private constructor(
    /** The layout's directory. */
    readonly dir: string,
  ) {}

  /**
   * Opens the layout at `dir`, creating the directory, `blobs/` and
   * `oci-layout` as needed; an existing layout keeps what it holds.
   * @throws {OciLayoutError} `dir` holds an `oci-layout` of another major version.
   */
  static async open(dir: string): Promise<OciLayoutWriter> {
    await mkdir(join(dir, 'blobs'), { recursive: true });
    const marker = join(dir, 'oci-layout');
    let existing: string | undefined;
    try {
      existing = await readFile(marker, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (existing === undefined) {
      await writeAtomically(marker, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    } else {
      let version: unknown;
      try {
        version = (JSON.parse(existing) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
      } catch {
        version = undefined;
      }
      if (typeof version !== 'string' || !version.startsWith('1.')) {
        throw new OciLayoutError(dir, `oci-layout says imageLayoutVersion ${JSON.stringify(version)}, not 1.x; refusing to write into it`);
      }
    }
    return new OciLayoutWriter(dir);
  }

  /**
   * `blobs/ALG/HEX` for a digest.
   * @throws {InvalidArgumentError} not a sha256/sha384/sha512 digest in lower-case hex of the right length.
   */
  blobPath(digest: string): string {
    hashAlgorithm(digest);
    const [algorithm, hex] = digest.split(':') as [string, string];
    if (hex.length !== HEX_LENGTH[algorithm] || !/^[0-9a-f]+$/.test(hex)) {
      throw new InvalidArgumentError(`${JSON.stringify(digest)} is not a ${algorithm} digest in lower-case hex`);
    }
    return join(this.dir, 'blobs', algorithm, hex);
  }

  /** Whether the layout holds a blob of this digest and size (content-addressed, so it is that blob). */
  async hasBlob(digest: string, size: number): Promise<boolean> {
    return (await this.blobSize(digest)) === size;
  }

  /**
   * The size of the blob stored under `digest`, or `undefined` when there is
   * none. Blobs are renamed into place only once verified, so a file there
   * is that blob.
   */
  async blobSize(digest: string): Promise<number | undefined> {
    try {
      const info = await stat(this.blobPath(digest));
      return info.isFile() ? info.size : undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** The compression of a stored blob, from its first bytes. */
  async blobCompression(digest: string): Promise<Compression> {
    const file = await open(this.blobPath(digest), 'r');
    try {
      const head = Buffer.alloc(4);
      const { bytesRead } = await file.read(head, 0, head.length, 0);
      return detectCompression(head.subarray(0, bytesRead));
    } finally {
      await file.close();
    }
  }

  /**
   * Streams a blob into place under `digest` and returns the compression its
   * first bytes show. `source` must fail unless its bytes are that blob (a
   * BlobStream does): it is renamed into place only once it has ended.
   */
  async writeBlob(digest: string, source: Readable | AsyncIterable<Buffer>, options: { step?: BlobStep; signal?: AbortSignal } = {}): Promise<Compression> {
    const path = this.blobPath(digest);
    await mkdir(dirname(path), { recursive: true });
    const sniffer = new HeadSniffer();
    const temporary = temporaryName(path);
    try {
      await pipeline(source, sniffer.step(options.step), createWriteStream(temporary, { flags: 'wx' }), options.signal ? { signal: options.signal } : {});
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
    return sniffer.compression;
  }

  /** Stores bytes as a blob (digest computed here) and returns its descriptor fields. */
  async writeBlobBytes(data: Buffer, algorithm: DigestAlgorithm = 'sha256'): Promise<{ digest: string; size: number }> {
    const digest = `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
    if (!(await this.hasBlob(digest, data.length))) {
      const path = this.blobPath(digest);
      await mkdir(dirname(path), { recursive: true });
      await writeAtomically(path, data);
    }
    return { digest, size: data.length };
  }

  /**
   * Points `tag` in index.json at `descriptor` (replacing what the tag named;
   * other entries are kept).
   * @throws {InvalidArgumentError} `tag` is not a valid ref.name.
   * @throws {OciLayoutError} the existing index.json is not an image index.
   */
  async tag(descriptor: Descriptor, tag: string): Promise<void> {
    checkTag(tag);
    const path = join(this.dir, 'index.json');
    let index: { schemaVersion: number; mediaType?: string; manifests: Descriptor[]; [key: string]: unknown };
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (text === undefined) {
      index = { schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests: [] };
    } else {
      try {
        index = JSON.parse(text) as typeof index;
      } catch (error) {
        throw new OciLayoutError(this.dir, 'index.json is not JSON', { cause: error });
      }
      if (typeof index !== 'object' || index === null || !Array.isArray(index.manifests ?? [])) {
        throw new OciLayoutError(this.dir, 'index.json is not an image index (no "manifests" array)');
      }
    }
    index.manifests = (index.manifests ?? []).filter((entry) => entry.annotations?.[REF_NAME_ANNOTATION] !== tag);
    index.manifests.push({ ...descriptor, annotations: { ...descriptor.annotations, [REF_NAME_ANNOTATION]: tag } });
    await writeAtomically(path, JSON.stringify(index, null, 2));
  }
}

/**
 * Checks a tag against image-spec's ref.name grammar.
 * @throws {InvalidArgumentError}
 */
export function checkTag(tag: string): void {
  if (!REF_NAME.test(tag)) {
    throw new InvalidArgumentError(`${JSON.stringify(tag)} is not a valid tag: use letters, digits and . _ - : @ + / between them, e.g. "v1.2"`);
  }
}

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

function parseManifest(raw: Buffer): ImageManifest {
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(raw.toString('utf8')) as ImageManifest;
  } catch {
    throw new ProtocolError('GetManifest: the proxy sent a manifest that is not JSON');
  }
  if (!Array.isArray(manifest?.layers) || typeof manifest.config?.digest !== 'string') {
    throw new ProtocolError('GetManifest: the manifest has no "config" and "layers"');
  }
  return manifest;
}

export type DigestAlgorithm = 'sha256' | 'sha384' | 'sha512';

/** The algorithm of a digest this library can verify. */
function algorithmOf(digest: string): DigestAlgorithm {
  return hashAlgorithm(digest) as DigestAlgorithm;
}

function digestOf(data: Buffer, algorithm: DigestAlgorithm): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

function temporaryName(path: string): string {
  return `${path}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
}

async function writeAtomically(path: string, data: string | Buffer): Promise<void> {
  const temporary = temporaryName(path);
  try {
    await writeFile(temporary, data, { flag: 'wx' });
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** Remembers the first bytes flowing through it, to tell the compression. */
class HeadSniffer {
  #head = Buffer.alloc(0);

  get compression(): Compression {
    return detectCompression(this.#head);
  }

  step(inner?: BlobStep): (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
    const sniffer = this;
    return async function* (source) {
      for await (const chunk of inner ? inner(source) : source) {
        if (sniffer.#head.length < 4) sniffer.#head = Buffer.concat([sniffer.#head, chunk.subarray(0, 4 - sniffer.#head.length)]);
        yield chunk;
      }
    };
  }
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
