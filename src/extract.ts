/**
 * Applying image layers to a directory, safely: the root filesystem of an
 * image, built layer by layer straight from the proxy's streams.
 *
 * Layers come from registries we do not control, so every entry is checked
 * before it touches the disk: no absolute paths, no `..`, never writing
 * through a symlink that leaves the root, no hardlinks to outside, no device
 * nodes unless running as root. Every directory on the way to an entry is
 * checked with lstat, so the path finally written is one the kernel resolves
 * exactly as we did. OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) delete what
 * lower layers wrote.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, chown, lchown, link, lstat, lutimes, mkdir, open, readdir, readlink, rm, symlink, utimes, realpath } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Parser, type ReadEntry } from 'tar';
import { decompress } from './decompress.js';
import { BlobVerificationError, ImageProxyError } from './errors.js';
import { native } from './native.js';

/** A layer entry that would harm the host, or a layer that cannot be applied. */
export class ExtractionError extends ImageProxyError {
  override name = 'ExtractionError';
  constructor(
    message: string,
    /** The offending archive path, when there is one. */
    readonly entryPath?: string,
  ) {
    super(message);
  }
}

export interface RootfsWriterOptions {
  /** Keep the layers' uid/gid. Default: only when running as root. */
  preserveOwnership?: boolean;
  /** Create character and block devices. Default: only when running as root (others cannot). */
  allowDeviceNodes?: boolean;
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_WHITEOUT = '.wh..wh..opq';
const MAX_SYMLINK_HOPS = 40;

interface DeferredDir {
  path: string;
  mode: number;
  mtime: Date | undefined;
}

/**
 * Builds a root filesystem in `root` from layers applied in order. Call
 * {@link finish} after the last layer: directory modes and times are set
 * last, since writing into a directory changes its mtime.
 */
export class RootfsWriter {
  readonly #preserveOwnership: boolean;
  readonly #allowDeviceNodes: boolean;
  #root = '';
  #layerPaths = new Set<string>();
  readonly #dirs = new Map<string, DeferredDir>();

  constructor(
    readonly root: string,
    options: RootfsWriterOptions = {},
  ) {
    const isRoot = process.getuid?.() === 0;
    this.#preserveOwnership = options.preserveOwnership ?? isRoot;
    this.#allowDeviceNodes = options.allowDeviceNodes ?? isRoot;
  }

  /**
   * Applies one layer blob (gzip, zstd or plain tar, detected from its bytes)
   * and checks its uncompressed digest against `diffId` when given.
   */
  async applyLayer(blob: Readable | AsyncIterable<Buffer>, options: { diffId?: string } = {}): Promise<{ diffId: string }> {
    await mkdir(this.root, { recursive: true });
    this.#root = await realpath(this.root);
    this.#layerPaths = new Set();
    const algorithm = options.diffId?.split(':')[0] ?? 'sha256';
    const hash = createHash(algorithm === 'sha512' ? 'sha512' : algorithm === 'sha384' ? 'sha384' : 'sha256');
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    await pipeline(blob, decompress, hashing, this.#tarSink());
    const diffId = `${algorithm}:${hash.digest('hex')}`;
    if (options.diffId !== undefined && diffId !== options.diffId) {
      throw new BlobVerificationError(options.diffId, -1, -1, `the uncompressed layer hashes to ${diffId}, not to its diff_id`);
    }
    return { diffId };
  }

  /** Sets directory modes and times; call once after the last layer. */
  async finish(): Promise<void> {
    const dirs = [...this.#dirs.values()].sort((a, b) => b.path.length - a.path.length);
    for (const dir of dirs) {
      await chmod(dir.path, dir.mode).catch(ignoreMissing);
      if (dir.mtime) await utimes(dir.path, dir.mtime, dir.mtime).catch(ignoreMissing);
    }
    this.#dirs.clear();
  }

  /** A Writable that parses tar and applies each entry in order. */
  #tarSink(): Writable {
    const parser = new Parser({ strict: true });
    let failure: Error | undefined;
    let chain = Promise.resolve();
    const fail = (error: Error): void => {
      failure ??= error;
    };
    parser.on('entry', (entry: ReadEntry) => {
      chain = chain.then(async () => {
        if (failure) return entry.resume();
        try {
          await this.#apply(entry);
        } catch (error) {
          fail(error as Error);
        }
        entry.resume(); // let the parser move on (drains what was not read)
      });
    });
    parser.on('error', (error: Error) => fail(new ExtractionError(`the layer is not a valid tar archive: ${error.message}`)));
    const ended = new Promise<void>((resolve) => parser.on('end', () => resolve()));
    return new Writable({
      write(chunk: Buffer, _encoding, callback) {
        if (failure) return callback(failure);
        if (parser.write(chunk)) callback();
        else parser.once('drain', () => callback(failure));
      },
      final(callback) {
        parser.end();
        ended
          .then(() => chain)
          .then(() => callback(failure), callback);
      },
    });
  }

  async #apply(entry: ReadEntry): Promise<void> {
    const parts = archivePath(entry.path);
    if (parts.length === 0) return; // the root itself: leave the caller's directory alone
    const name = parts[parts.length - 1]!;
    const parentParts = parts.slice(0, -1);
    const relPath = parts.join('/');

    if (name === OPAQUE_WHITEOUT) {
      const dir = await this.#resolveDir(parentParts, entry.path, false);
      if (dir === null) return; // nothing below it from lower layers
      const prefix = parentParts.length ? parentParts.join('/') + '/' : '';
      for (const child of await readdir(dir)) {
        if (!this.#layerPaths.has(prefix + child)) await rm(join(dir, child), { recursive: true, force: true });
      }
      return;
    }
    if (name.startsWith(WHITEOUT_PREFIX)) {
      const victim = name.slice(WHITEOUT_PREFIX.length);
      if (victim === '' || victim === '.' || victim === '..') throw hostile(entry.path, 'is a whiteout of an invalid name');
      const dir = await this.#resolveDir(parentParts, entry.path, false);
      if (dir !== null) await rm(join(dir, victim), { recursive: true, force: true });
      return;
    }

    const dir = await this.#resolveDir(parentParts, entry.path);
    const target = join(dir, name);
    this.#layerPaths.add(relPath);
    const mode = (entry.mode ?? 0o644) & 0o7777;

    switch (entry.type) {
      case 'Directory':
      case 'GNUDumpDir': {
        const existing = await lstatOrNull(target);
        if (existing && !existing.isDirectory()) await rm(target, { recursive: true, force: true });
        if (!existing?.isDirectory()) await mkdir(target, { mode: 0o700 });
        await chmod(target, mode | 0o700); // writable while we fill it; the real mode is set in finish()
        await this.#chown(target, entry, false);
        this.#dirs.set(target, { path: target, mode, mtime: entry.mtime });
        return;
      }
      case 'File':
      case 'OldFile':
      case 'ContiguousFile': {
        await this.#clear(target);
        const handle = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        try {
          for await (const chunk of entry as AsyncIterable<Buffer>) await handle.write(chunk);
          if (this.#preserveOwnership) await handle.chown(entry.uid ?? 0, entry.gid ?? 0);
          await handle.chmod(mode);
          if (entry.mtime) await handle.utimes(entry.mtime, entry.mtime);
        } finally {
          await handle.close();
        }
        return;
      }
      case 'SymbolicLink': {
        await this.#clear(target);
        await symlink(entry.linkpath ?? '', target);
        await this.#chown(target, entry, true);
        if (entry.mtime) await lutimes(target, entry.mtime, entry.mtime);
        return;
      }
      case 'Link': {
        const sourceParts = archivePath(entry.linkpath ?? '', entry.path);
        if (sourceParts.length === 0) throw hostile(entry.path, 'is a hardlink to the root directory');
        const sourceDir = await this.#resolveDir(sourceParts.slice(0, -1), entry.path);
        const source = join(sourceDir, sourceParts[sourceParts.length - 1]!);
        const stat = await lstatOrNull(source);
        if (!stat) throw new ExtractionError(`${entry.path}: hardlink target ${entry.linkpath} does not exist in the image`, entry.path);
        if (stat.isDirectory()) throw hostile(entry.path, `is a hardlink to a directory (${entry.linkpath})`);
        if (source === target) return;
        await this.#clear(target);
        await link(source, target);
        return;
      }
      case 'CharacterDevice':
      case 'BlockDevice':
      case 'FIFO': {
        const kind = entry.type === 'FIFO' ? 'fifo' : entry.type === 'CharacterDevice' ? 'char' : 'block';
        if (kind !== 'fifo' && !this.#allowDeviceNodes) {
          throw hostile(entry.path, 'is a device node; only root may create device nodes (run as root, or leave this layer out with --layer)');
        }
        await this.#clear(target);
        native.mknod(target, kind, mode, entry.header.devmaj ?? 0, entry.header.devmin ?? 0);
        await this.#chown(target, entry, true);
        return;
      }
      default:
        throw new ExtractionError(`${entry.path}: unsupported tar entry type ${entry.type}`, entry.path);
    }
  }

  /**
   * The host directory for an archive directory path, creating missing
   * directories (or, with `create` false, null when one is missing). Symlinks
   * on the way are followed only while they stay inside the root; anything
   * else is refused.
   */
  async #resolveDir(parts: string[], entryPath: string, create: false): Promise<string | null>;
  async #resolveDir(parts: string[], entryPath: string, create?: true): Promise<string>;
  async #resolveDir(parts: string[], entryPath: string, create = true): Promise<string | null> {
    const queue = [...parts];
    let current = this.#root;
    let hops = 0;
    while (queue.length > 0) {
      const part = queue.shift()!;
      const next = join(current, part);
      const stat = await lstatOrNull(next);
      if (!stat) {
        if (!create) return null; // a whiteout below a directory no layer made
        await mkdir(next, { mode: 0o755 });
        this.#layerPaths.add(relative(this.#root, next).split(sep).join('/'));
        current = next;
      } else if (stat.isDirectory()) {
        current = next;
      } else if (stat.isSymbolicLink()) {
        const target = await readlink(next);
        const resolved = resolve(current, target);
        const where = relative(this.#root, next);
        if (isAbsolute(target) || !inside(this.#root, resolved)) {
          throw hostile(entryPath, `would be written through the symlink ${where} -> ${target}, which leads outside the extraction directory`);
        }
        if (++hops > MAX_SYMLINK_HOPS) throw hostile(entryPath, `goes through more than ${MAX_SYMLINK_HOPS} symlinks`);
        // Start again from the root along the link's target, lstat-checking every step.
        queue.unshift(...relative(this.#root, resolved).split(sep).filter(Boolean));
        current = this.#root;
      } else {
        throw new ExtractionError(`${entryPath}: ${relative(this.#root, next)} is not a directory`, entryPath);
      }
    }
    return current;
  }

  /** Removes whatever is at `target` (never following a symlink). */
  async #clear(target: string): Promise<void> {
    const existing = await lstatOrNull(target);
    if (existing) await rm(target, { recursive: existing.isDirectory(), force: true });
  }

  async #chown(target: string, entry: ReadEntry, noFollow: boolean): Promise<void> {
    if (!this.#preserveOwnership) return;
    await (noFollow ? lchown : chown)(target, entry.uid ?? 0, entry.gid ?? 0);
  }
}

/** Splits an archive path into components, refusing absolute paths and `..`. */
function archivePath(path: string, entryPath = path): string[] {
  if (path.startsWith('/')) throw hostile(entryPath, `uses the absolute path ${path}`);
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw hostile(entryPath, `uses ".." in ${path} to climb out of the extraction directory`);
  return parts;
}

function hostile(entryPath: string, what: string): ExtractionError {
  return new ExtractionError(`refusing layer entry ${JSON.stringify(entryPath)}: it ${what}`, entryPath);
}

function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root + sep);
}

async function lstatOrNull(path: string) {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

function ignoreMissing(error: NodeJS.ErrnoException): void {
  if (error.code !== 'ENOENT') throw error;
}
