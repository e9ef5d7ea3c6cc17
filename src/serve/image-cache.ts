/**
 * Images as served: each resolved once per reference (re-resolved after
 * `tagTtlMs`), shared per manifest digest, and kept open on the proxy while
 * in use; an image idle for `idleCloseMs` is closed and re-opened on demand
 * (by digest where the source can, and checked to be the same manifest).
 * Each repository knows only the manifests and blobs it has served, so a
 * blob is reachable only through a manifest of its own repository.
 */
import { detectCompression, type Compression } from '../decompress.js';
import { consistentManifest, servableImage } from '../image-manifest.js';
import type { OpenedImage } from '../images.js';
import { MediaType, type Descriptor } from '../oci.js';
import { UNKNOWN_SIZE } from '../protocol.js';
import type { ImageProxy } from '../proxy.js';
import { RegistryError } from './registry-errors.js';

/** A blob a served manifest names. */
export interface ServedBlob {
  digest: string;
  size: number;
  /** The config when it is served from memory (GetFullConfig's bytes). */
  bytes?: Buffer;
}

/** A manifest as served, and what it takes to serve its blobs. */
export class ServedImage {
  readonly #proxy: ImageProxy;
  readonly #idleCloseMs: number;
  #image: OpenedImage | null;
  #opening: Promise<OpenedImage> | undefined;
  #users = 0;
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(
    proxy: ImageProxy,
    image: OpenedImage,
    idleCloseMs: number,
    /** The reference that re-opens this very image (by digest where the source can). */
    readonly reopenReference: string,
    /** GetManifest's digest: the re-opened image must have it. */
    readonly sourceDigest: string,
    /** The manifest served: bytes, digest, media type. */
    readonly manifest: { raw: Buffer; digest: string; mediaType: string },
    /** The blobs it names, by digest. */
    readonly blobs: ReadonlyMap<string, ServedBlob>,
  ) {
    this.#proxy = proxy;
    this.#image = image;
    this.#idleCloseMs = idleCloseMs;
    this.#armIdle();
  }

  /** Whether the image is open on the proxy now. */
  get open(): boolean {
    return this.#image !== null;
  }

  /**
   * The opened image, re-opened if it was closed; call `release` when done
   * with it (the idle timer starts when no one uses it).
   */
  async acquire(): Promise<{ image: OpenedImage; release: () => void }> {
    this.#users++;
    clearTimeout(this.#idleTimer);
    try {
      const image = this.#image ?? (await (this.#opening ??= this.#reopen().finally(() => (this.#opening = undefined))));
      let released = false;
      return {
        image,
        release: () => {
          if (released) return;
          released = true;
          this.#done();
        },
      };
    } catch (error) {
      this.#done();
      throw error;
    }
  }

  /** Closes the image on the proxy now (it is re-opened if used again). */
  async close(): Promise<void> {
    clearTimeout(this.#idleTimer);
    const image = this.#image;
    this.#image = null;
    if (image && this.#proxy.running) await image.close().catch(() => {});
  }

  #done(): void {
    this.#users--;
    this.#armIdle();
  }

  #armIdle(): void {
    if (this.#users > 0) return;
    clearTimeout(this.#idleTimer);
    // acquire() clears this timer: when it fires, no one uses the image.
    this.#idleTimer = setTimeout(() => void this.close(), this.#idleCloseMs);
    this.#idleTimer.unref();
  }

  async #reopen(): Promise<OpenedImage> {
    const image = await this.#proxy.openImage(this.reopenReference);
    try {
      const { digest } = await this.#proxy.fetchManifestRaw(image);
      if (digest !== this.sourceDigest) {
        throw new RegistryError(404, 'BLOB_UNKNOWN', `the image behind this manifest changed at the source (${this.sourceDigest} is now ${digest}); fetch the manifest again`);
      }
    } catch (error) {
      await image.close().catch(() => {});
      throw error;
    }
    this.#image = image;
    return image;
  }
}

/** Options of {@link ImageCache}. */
export interface ImageCacheOptions {
  /** Ms an image stays open on the proxy after its last use. */
  idleCloseMs: number;
  /** Ms a tag stays resolved to the manifest it named. */
  tagTtlMs: number;
  /** The clock tags expire by (tests set it). Default `Date.now`. */
  now?: () => number;
}

/** The images served, by reference, by manifest digest, and per repository. */
export class ImageCache {
  readonly #proxy: ImageProxy;
  readonly #options: ImageCacheOptions;
  readonly #byReference = new Map<string, { expires: number; image: Promise<ServedImage> }>();
  readonly #byDigest = new Map<string, ServedImage>();
  /** By GetManifest's digest: a tag re-resolved to the same source manifest is not probed again. */
  readonly #bySource = new Map<string, ServedImage>();
  readonly #repositories = new Map<string, { manifests: Map<string, ServedImage>; blobs: Map<string, ServedImage> }>();

  constructor(proxy: ImageProxy, options: ImageCacheOptions) {
    this.#proxy = proxy;
    this.#options = options;
  }

  /** How many served images are open on the proxy now. */
  get openImages(): number {
    return [...this.#byDigest.values()].filter((image) => image.open).length;
  }

  /**
   * The image `reference` names, served under `repository`; `reopen` is the
   * reference that names the same image once its digest is known.
   */
  async resolve(repository: string, reference: string, reopen: (sourceDigest: string) => string): Promise<ServedImage> {
    const now = (this.#options.now ?? Date.now)();
    let entry = this.#byReference.get(reference);
    if (!entry || entry.expires <= now) {
      const image = this.#load(reference, reopen);
      entry = { expires: now + this.#options.tagTtlMs, image };
      this.#byReference.set(reference, entry);
      image.catch(() => {
        if (this.#byReference.get(reference)?.image === image) this.#byReference.delete(reference);
      });
    }
    const served = await entry.image;
    this.#remember(repository, served);
    return served;
  }

  /** A manifest `repository` has served, by its digest. */
  manifest(repository: string, digest: string): ServedImage | undefined {
    return this.#repositories.get(repository)?.manifests.get(digest);
  }

  /** A blob of a manifest `repository` has served, and that image. */
  blob(repository: string, digest: string): { image: ServedImage; blob: ServedBlob } | undefined {
    const image = this.#repositories.get(repository)?.blobs.get(digest);
    const blob = image?.blobs.get(digest);
    return image && blob && { image, blob };
  }

  /** Closes every image on the proxy (waits for resolutions under way). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#byReference.values()].map((entry) => entry.image));
    await Promise.all([...this.#byDigest.values()].map((image) => image.close()));
  }

  #remember(repository: string, image: ServedImage): void {
    let known = this.#repositories.get(repository);
    if (!known) this.#repositories.set(repository, (known = { manifests: new Map(), blobs: new Map() }));
    known.manifests.set(image.manifest.digest, image);
    for (const digest of image.blobs.keys()) known.blobs.set(digest, image);
  }

  async #load(reference: string, reopen: (sourceDigest: string) => string): Promise<ServedImage> {
    const proxy = this.#proxy;
    const image = await proxy.openImage(reference);
    try {
      const again = this.#bySource.get((await proxy.fetchManifestRaw(image)).digest);
      if (again) {
        await image.close();
        return again;
      }
      const servable = await servableImage(proxy, image, undefined);
      const layers: Array<{ descriptor: Descriptor; compression: Compression }> = [];
      for (const descriptor of servable.layers) layers.push(await probeLayer(proxy, image, descriptor));
      const manifest = consistentManifest(servable, layers);
      const known = this.#byDigest.get(manifest.digest);
      if (known) {
        await image.close();
        return known;
      }
      const blobs = new Map<string, ServedBlob>();
      const config = servable.config;
      blobs.set(config.digest, { digest: config.digest, size: config.size, ...(servable.configBytes && { bytes: servable.configBytes }) });
      for (const { descriptor } of layers) blobs.set(descriptor.digest, { digest: descriptor.digest, size: descriptor.size });
      const mediaType = manifest.manifest.mediaType ?? MediaType.ImageManifest;
      const served = new ServedImage(proxy, image, this.#options.idleCloseMs, reopen(servable.sourceDigest), servable.sourceDigest, { raw: manifest.raw, digest: manifest.digest, mediaType }, blobs);
      this.#byDigest.set(manifest.digest, served);
      this.#bySource.set(servable.sourceDigest, served);
      return served;
    } catch (error) {
      await image.close().catch(() => {});
      throw error;
    }
  }
}

/**
 * A layer's compression, from its first bytes (media types lie: a
 * `docker-archive:` layer is plain tar whatever its manifest says), and its
 * size, counted when the source could not tell it (`containers-storage:` on
 * protocol 0.2.3).
 */
async function probeLayer(proxy: ImageProxy, image: OpenedImage, descriptor: Descriptor): Promise<{ descriptor: Descriptor; compression: Compression }> {
  const stream = await proxy.getBlob(image, descriptor.digest, descriptor.size);
  let head = Buffer.alloc(0);
  let size = 0;
  // Leaving the loop early (break or an error) destroys the stream: a Readable's async iterator does.
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (head.length < 4) head = Buffer.concat([head, chunk.subarray(0, 4 - head.length)]);
    size += chunk.length;
    if (head.length >= 4 && descriptor.size !== UNKNOWN_SIZE) break;
  }
  return { descriptor: descriptor.size === UNKNOWN_SIZE ? { ...descriptor, size } : descriptor, compression: detectCompression(head) };
}
