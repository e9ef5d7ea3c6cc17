/**
 * OCI image layouts (image-spec 1.1, image-layout): blobs under
 * `blobs/ALG/HEX`, the `oci-layout` file, and `index.json` entries tagged with
 * `org.opencontainers.image.ref.name`; every file goes in under a temporary
 * name and is renamed into place, so a failed write leaves nothing half done.
 * The one place that knows the layout's format: the CLI's pull, the tests'
 * image builder and the benchmarks all go through it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hashAlgorithm } from './blobs/index.js';
import { detectCompression, type Compression } from './decompress.js';
import { ImageProxyError, InvalidArgumentError } from './errors.js';
import { MediaType, type Descriptor } from './oci.js';

/** The annotation that names a manifest in `index.json` (its tag). */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

const HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
/** image-spec's grammar for ref.name: components of alphanumerics joined by separators. */
const REF_NAME = /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;

/** An OCI layout that cannot be written: a broken index.json, an unknown layout version. */
export class OciLayoutError extends ImageProxyError {
  override name = 'OciLayoutError';
  /** The error for the layout at `layout`, saying what is wrong with it. */
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
      await writeAtomically(marker, LAYOUT_MARKER);
    } else {
      let version: unknown;
      try {
        version = (JSON.parse(existing) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
      } catch {
        // Not JSON: `version` stays undefined, refused below as an unknown version.
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
    return layoutBlobPath(this.dir, digest);
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

  /**
   * Whether the layout holds `digest` whole: a file of `size` bytes (any size
   * when `size` is -1) whose bytes hash to `digest`. Blobs go in only once
   * verified, but a layout may have been written by other tools or damaged
   * since, so the bytes are hashed again (disk is faster than any network).
   * A file that fails the check is removed, so the blob is fetched again.
   */
  async hasVerifiedBlob(digest: string, size: number): Promise<boolean> {
    const stored = await this.blobSize(digest);
    if (stored === undefined) return false;
    if (size === -1 || stored === size) {
      const hash = createHash(algorithmOf(digest));
      for await (const chunk of createReadStream(this.blobPath(digest))) hash.update(chunk as Buffer);
      if (`${algorithmOf(digest)}:${hash.digest('hex')}` === digest) return true;
    }
    await rm(this.blobPath(digest), { force: true });
    return false;
  }

  /**
   * Removes the temporary files (`NAME.partial-PID-…`) that writers which no
   * longer run left behind (a pull killed mid-blob); those of a live process
   * (another pull into the same layout) are kept. Returns how many went.
   */
  async removeStaleTemporaries(): Promise<number> {
    let removed = 0;
    const dirs = [this.dir, ...(await readdir(join(this.dir, 'blobs'))).map((name) => join(this.dir, 'blobs', name))];
    for (const dir of dirs) {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (error) {
        if (['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) continue;
        throw error;
      }
      for (const name of names) {
        const pid = /\.partial-(\d+)-[0-9a-f]{8}$/.exec(name)?.[1];
        if (pid === undefined || isRunning(Number(pid))) continue;
        await rm(join(dir, name), { force: true });
        removed++;
      }
    }
    return removed;
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
    const file = createWriteStream(temporary, { flags: 'wx' });
    try {
      await pipeline(source, sniffer.step(options.step), file, options.signal ? { signal: options.signal } : {});
      await rename(temporary, path);
    } catch (error) {
      // An abort can end the pipeline while the file's open is still in flight: removed
      // before that open lands, the temporary file would be made again and left behind.
      if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()));
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
    const path = join(this.dir, 'index.json');
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    await writeAtomically(path, indexWithTag(this.dir, text, descriptor, tag));
  }
}

/** The `oci-layout` file of a new layout. */
export const LAYOUT_MARKER = JSON.stringify({ imageLayoutVersion: '1.0.0' });

/**
 * `DIR/blobs/ALG/HEX` for a digest.
 * @throws {InvalidArgumentError} not a sha256/sha384/sha512 digest in lower-case hex of the right length.
 */
export function layoutBlobPath(dir: string, digest: string): string {
  hashAlgorithm(digest);
  const [algorithm, hex] = digest.split(':') as [string, string];
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[0-9a-f]+$/.test(hex)) {
    throw new InvalidArgumentError(`${JSON.stringify(digest)} is not a ${algorithm} digest in lower-case hex`);
  }
  return join(dir, 'blobs', algorithm, hex);
}

/**
 * The `index.json` text (`existing`, or a new index when undefined) with
 * `tag` pointing at `descriptor`: what the tag named before is dropped, other
 * entries are kept.
 * @throws {InvalidArgumentError} `tag` is not a valid ref.name.
 * @throws {OciLayoutError} `existing` is not an image index.
 */
export function indexWithTag(dir: string, existing: string | undefined, descriptor: Descriptor, tag: string): string {
  checkTag(tag);
  let index: { schemaVersion: number; mediaType?: string; manifests: Descriptor[]; [key: string]: unknown };
  if (existing === undefined) {
    index = { schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests: [] };
  } else {
    try {
      index = JSON.parse(existing) as typeof index;
    } catch (error) {
      throw new OciLayoutError(dir, 'index.json is not JSON', { cause: error });
    }
    // Stryker disable next-line ArrayDeclaration: any array passes Array.isArray; its elements are never read (the next statement takes its own default)
    if (typeof index !== 'object' || index === null || !Array.isArray(index.manifests ?? [])) {
      throw new OciLayoutError(dir, 'index.json is not an image index (no "manifests" array)');
    }
  }
  index.manifests = (index.manifests ?? []).filter((entry) => entry.annotations?.[REF_NAME_ANNOTATION] !== tag);
  index.manifests.push({ ...descriptor, annotations: { ...descriptor.annotations, [REF_NAME_ANNOTATION]: tag } });
  return JSON.stringify(index, null, 2);
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

export type DigestAlgorithm = 'sha256' | 'sha384' | 'sha512';

/** The algorithm of a digest this library can verify. */
export function algorithmOf(digest: string): DigestAlgorithm {
  return hashAlgorithm(digest) as DigestAlgorithm;
}

export function digestOf(data: Buffer, algorithm: DigestAlgorithm): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** Whether a process with this id exists (a temporary file's writer may still be at work). */
export function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // exists, another user's
  }
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
export class HeadSniffer {
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

