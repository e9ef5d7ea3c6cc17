/**
 * Applying image layers to a directory: the root filesystem of an image,
 * built layer by layer straight from the proxy's streams, as container
 * runtimes build it.
 *
 * Layers come from registries we do not control, so nothing an entry says
 * can reach outside the root: paths are resolved inside it (in-root.ts), a
 * path's last component is never followed (files are created O_EXCL |
 * O_NOFOLLOW, metadata is set on the entry itself or on an fd opened with
 * O_NOFOLLOW), and directory metadata deferred to {@link RootfsWriter.finish}
 * is applied only to the directory its entry made. Entries are applied
 * synchronously between stream chunks: each is a few short syscalls on local
 * files, and a promise per entry would cost more than the syscalls.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  ftruncateSync,
  lchownSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  realpathSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decompress } from '../decompress.js';
import { BlobVerificationError, ImageProxyError } from '../errors.js';
import { native } from '../native.js';
import { InRoot, lstatOrNull, NotADirectoryError } from './in-root.js';
import { display, TarFormatError, TarReader, type TarHeader, type TarSink } from './tar-reader.js';

/** A layer entry that would harm the host, or a layer that cannot be applied. */
export class ExtractionError extends ImageProxyError {
  /** Always `"ExtractionError"`. */
  override name = 'ExtractionError';
  /** An error with its message, the archive path it is about, and its cause. */
  constructor(
    message: string,
    /** The offending archive path, quoted as in the message, when there is one. */
    readonly entryPath?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** How {@link RootfsWriter} extracts. */
export interface RootfsWriterOptions {
  /** Keep the layers' uid/gid. Default: only when running as root. */
  preserveOwnership?: boolean;
  /** Create character and block devices. Default: only when running as root (others cannot). */
  allowDeviceNodes?: boolean;
  /**
   * Extract into a directory that already has content. Off by default: the
   * image's whiteouts delete files, and in a non-empty directory they would
   * delete yours (an opaque whiteout at the root empties it).
   */
  allowNonEmpty?: boolean;
  /**
   * Fail once the layers' uncompressed bytes (tar stream, all layers
   * together) pass this many: a guard against decompression bombs.
   * Default: no limit.
   */
  maxUncompressedBytes?: number;
  /**
   * Carry on with a root filesystem another writer was building (after a
   * crash, say): the state its {@link RootfsWriter.checkpoint} returned after
   * its last whole layer. The directory may then be non-empty, and the
   * directory modes and times of those layers are still set by
   * {@link RootfsWriter.finish}. A layer it was in the middle of is simply
   * applied again.
   */
  resumeFrom?: RootfsCheckpoint;
}

/**
 * What a {@link RootfsWriter} must remember between layers, as plain JSON:
 * the directory metadata deferred to {@link RootfsWriter.finish} and the
 * counts it reports.
 */
export interface RootfsCheckpoint {
  /** Entries applied so far. */
  entries: number;
  /** Uncompressed bytes applied so far (for `maxUncompressedBytes`). */
  uncompressedBytes: number;
  /** Deferred directories: path in the root (bytes as latin1), mode, mtime seconds and nanoseconds. */
  directories: Array<[path: string, mode: number, sec: number, nsec: number]>;
  /** Extended attributes not applied: name, entries, reason. */
  skippedXattrs: Array<[name: string, entries: number, reason: string]>;
}

/** What {@link RootfsWriter.finish} reports. */
export interface ExtractionReport {
  /** Archive entries applied (whiteouts included). */
  entries: number;
  /** Extended attributes the layers carry that were not applied, by name. */
  skippedXattrs: Array<{
    /** The attribute's name, e.g. `security.selinux`. */
    name: string;
    /** How many entries carried it. */
    entries: number;
    /** Why it was not applied (the error, e.g. `EPERM`). */
    reason: string;
  }>;
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_WHITEOUT = '.wh..wh..opq';
/** AUFS bookkeeping names (`.wh..wh.plnk`, ...): not files, not whiteouts; runtimes skip them. */
const AUFS_META_PREFIX = '.wh..wh.';
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW; // libuv adds O_CLOEXEC
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW; // libuv adds O_CLOEXEC

interface DeferredDir {
  mode: number;
  mtime: TarHeader['mtime'];
}

/** State shared by all layers of one root filesystem. */
interface Rootfs {
  inRoot: InRoot;
  preserveOwnership: boolean;
  allowDeviceNodes: boolean;
  canSetAnyXattr: boolean;
  /** Directory metadata to set last, by rel path. */
  deferred: Map<string, DeferredDir>;
  skipped: Map<string, { entries: number; reason: string }>;
  entries: number;
}

/**
 * Builds a root filesystem in `root` from layers applied in order. Call
 * {@link finish} after the last layer: directory modes and times are set
 * last, since writing into a directory changes its mtime.
 */
export class RootfsWriter {
  readonly #options: RootfsWriterOptions;
  #rootfs: Rootfs | undefined;
  #uncompressedBytes = 0;

  /** A writer that builds the root filesystem in `root`. */
  constructor(
    /** The directory the root filesystem is built in. */
    readonly root: string,
    options: RootfsWriterOptions = {},
  ) {
    const limit = options.maxUncompressedBytes;
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) {
      throw new ExtractionError(`maxUncompressedBytes must be a non-negative integer, got ${String(limit)}`);
    }
    this.#options = options;
    this.#uncompressedBytes = options.resumeFrom?.uncompressedBytes ?? 0;
  }

  /**
   * Creates the directory and checks that it may be written (empty, unless
   * `allowNonEmpty` or `resumeFrom`), as the first {@link applyLayer} would:
   * to learn of a refusal before anything is fetched.
   * @throws {ExtractionError} the directory is not empty.
   */
  async prepare(): Promise<void> {
    this.#rootfs ??= this.#open();
  }

  /**
   * The state to resume from ({@link RootfsWriterOptions.resumeFrom}) once
   * the layers applied so far are whole; JSON-serialisable.
   */
  checkpoint(): RootfsCheckpoint {
    const rootfs = this.#rootfs;
    const from = this.#options.resumeFrom;
    if (!rootfs) return from ?? { entries: 0, uncompressedBytes: this.#uncompressedBytes, directories: [], skippedXattrs: [] };
    return {
      entries: rootfs.entries,
      uncompressedBytes: this.#uncompressedBytes,
      directories: [...rootfs.deferred].map(([rel, { mode, mtime }]) => [rel, mode, mtime.sec, mtime.nsec]),
      skippedXattrs: [...rootfs.skipped].map(([name, { entries, reason }]) => [name, entries, reason]),
    };
  }

  /**
   * Applies one layer blob (gzip, zstd or plain tar, detected from its bytes)
   * and checks its uncompressed digest against `diffId` when given. A layer
   * may be applied again after a failure (a retry): entries are replaced and
   * whiteouts are idempotent.
   */
  async applyLayer(
    blob: Readable | AsyncIterable<Buffer>,
    options: {
      /** The layer's expected uncompressed digest (the config's `rootfs.diff_ids` entry). */
      diffId?: string;
    } = {},
  ): Promise<{
    /** The digest of the uncompressed layer, as hashed while it was applied. */
    diffId: string;
  }> {
    const rootfs = (this.#rootfs ??= this.#open());
    const algorithm = options.diffId?.split(':')[0] ?? 'sha256';
    if (!['sha256', 'sha384', 'sha512'].includes(algorithm)) throw new ExtractionError(`unsupported diff_id algorithm in ${options.diffId}`);
    const hash = createHash(algorithm);
    const layer = new LayerApplier(rootfs);
    const reader = new TarReader(layer);
    const limit = this.#options.maxUncompressedBytes;
    const sink = new Writable({
      // Stryker disable next-line ArithmeticOperator: the sink's buffer size changes speed, not what is written
      highWaterMark: 1024 * 1024,
      write: (chunk: Buffer, _encoding, callback) => {
        try {
          this.#uncompressedBytes += chunk.length;
          if (limit !== undefined && this.#uncompressedBytes > limit) {
            throw new ExtractionError(`the layers' uncompressed size passes the limit of ${limit} bytes (maxUncompressedBytes / --max-uncompressed): refusing a possible decompression bomb`);
          }
          hash.update(chunk);
          reader.push(chunk); // it ignores what follows the end marker (padding)
          callback();
        } catch (error) {
          callback(asExtractionError(error));
        }
      },
      final: (callback) => {
        try {
          reader.end();
          callback();
        } catch (error) {
          callback(asExtractionError(error));
        }
      },
      destroy: (error, callback) => {
        layer.abort();
        callback(error);
      },
    });
    try {
      await pipeline(blob, decompress, sink);
    } catch (error) {
      // A damaged compressed layer can fail to decompress before its blob's
      // verdict arrives (GetBlob's comes from FinishPipe, after the last byte).
      throw isDecompressionError(error) ? new ExtractionError(`the layer does not decompress: ${error.message}`, undefined, { cause: error }) : error;
    }
    const diffId = `${algorithm}:${hash.digest('hex')}`;
    if (options.diffId !== undefined && diffId !== options.diffId) {
      throw new BlobVerificationError(options.diffId, -1, -1, `the uncompressed layer hashes to ${diffId}, not to its diff_id`);
    }
    return { diffId };
  }

  /**
   * Sets directory modes and times; call once after the last layer (also
   * when resuming a run that had applied every layer but died before this).
   */
  async finish(): Promise<ExtractionReport> {
    if (this.#options.resumeFrom) this.#rootfs ??= this.#open();
    const rootfs = this.#rootfs;
    if (!rootfs) return { entries: 0, skippedXattrs: [] };
    const depth = (rel: string) => (rel === '' ? 0 : rel.split('/').length);
    const dirs = [...rootfs.deferred].sort(([a], [b]) => depth(b) - depth(a));
    for (const [rel, dir] of dirs) {
      // Only the directory its entry made: still a directory, no symlink on the way.
      if (rel !== '' && rootfs.inRoot.existingDir(rel.split('/')) !== rel) continue;
      let fd: number;
      try {
        fd = openSync(rootfs.inRoot.host(rel), DIR_FLAGS);
      } catch (error) {
        if (['ENOENT', 'ELOOP', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) continue;
        throw asExtractionError(error);
      }
      try {
        fchmodSync(fd, dir.mode);
        native.futimes(fd, dir.mtime.sec, dir.mtime.nsec);
      } finally {
        closeSync(fd);
      }
    }
    rootfs.deferred.clear();
    return {
      entries: rootfs.entries,
      skippedXattrs: [...rootfs.skipped].map(([name, { entries, reason }]) => ({ name, entries, reason })),
    };
  }

  #open(): Rootfs {
    mkdirSync(this.root, { recursive: true });
    const from = this.#options.resumeFrom;
    if (!this.#options.allowNonEmpty && !from && readdirSync(this.root).length > 0) {
      throw new ExtractionError(
        `${this.root} is not empty: the image's whiteouts could delete files that are not the image's. ` +
          'Extract into a new or empty directory, or allow it explicitly (allowNonEmpty, CLI --allow-non-empty)',
      );
    }
    const isRoot = process.getuid?.() === 0;
    return {
      inRoot: new InRoot(realpathSync(this.root, { encoding: 'buffer' }).toString('latin1')),
      preserveOwnership: this.#options.preserveOwnership ?? isRoot,
      allowDeviceNodes: this.#options.allowDeviceNodes ?? isRoot,
      canSetAnyXattr: isRoot,
      deferred: new Map(from?.directories.map(([rel, mode, sec, nsec]) => [rel, { mode, mtime: { sec, nsec } }])),
      skipped: new Map(from?.skippedXattrs.map(([name, entries, reason]) => [name, { entries, reason }])),
      entries: from?.entries ?? 0,
    };
  }
}

/** The tar sink for one layer: applies each entry as the reader meets it. */
class LayerApplier implements TarSink {
  readonly #rootfs: Rootfs;
  readonly #inRoot: InRoot;
  /** What this layer wrote, and their ancestors: an opaque whiteout keeps them. */
  readonly #written = new Set<string>();
  #header: TarHeader | undefined;
  #file: { fd: number; header: TarHeader } | undefined;

  constructor(rootfs: Rootfs) {
    this.#rootfs = rootfs;
    this.#inRoot = rootfs.inRoot;
  }

  entry(header: TarHeader): void {
    this.#header = header;
    this.#rootfs.entries++;
    this.#guard(() => this.#entry(header));
  }

  data(chunk: Buffer, offset: number): void {
    const file = this.#file;
    if (!file) return; // a whiteout's (empty) content
    this.#guard(() => {
      for (let at = 0; at < chunk.length; ) at += writeSync(file.fd, chunk, at, chunk.length - at, offset + at);
    });
  }

  entryEnd(): void {
    const file = this.#file;
    if (!file) return;
    this.#file = undefined;
    this.#guard(() => {
      try {
        const { fd, header } = file;
        if (header.sparse) ftruncateSync(fd, header.size); // a hole at the end is not in the data
        if (this.#rootfs.preserveOwnership) fchownSync(fd, header.uid, header.gid);
        fchmodSync(fd, header.mode); // after chown, which clears setuid
        this.#xattrs(header, (name, value) => native.fsetXattr(fd, name, value), false);
        native.futimes(fd, header.mtime.sec, header.mtime.nsec);
      } finally {
        closeSync(file.fd);
      }
    });
  }

  /** The stream failed: close the file being written. */
  abort(): void {
    if (this.#file) closeSync(this.#file.fd);
    this.#file = undefined;
  }

  /** Runs one step, turning any failure into an ExtractionError naming the entry. */
  #guard(step: () => void): void {
    try {
      step();
    } catch (error) {
      this.abort();
      throw entryError(this.#header!, error);
    }
  }

  #entry(header: TarHeader): void {
    const parts = archivePath(header.path, header);
    if (parts.length === 0) {
      // "./": the root directory's own metadata.
      if (header.type !== 'directory') throw hostile(header, `replaces the root directory with a ${header.type}`);
      this.#directory('', header);
      return;
    }
    const name = parts[parts.length - 1]!;
    const parentParts = parts.slice(0, -1);
    if (name.startsWith(WHITEOUT_PREFIX)) {
      this.#whiteout(parentParts, name, header);
      return;
    }
    // Stryker disable next-line ArrowFunction: each directory it makes is an ancestor of rel, which #markWritten adds too
    const parent = this.#inRoot.dir(parentParts, (rel) => this.#written.add(rel));
    const rel = parent === '' ? name : `${parent}/${name}`;
    this.#markWritten(rel);
    switch (header.type) {
      case 'directory':
        return this.#directory(rel, header);
      case 'file':
        this.#file = { fd: this.#create(rel, () => openSync(this.#inRoot.host(rel), CREATE_FLAGS, 0o600)), header };
        return;
      case 'symlink': {
        const path = this.#inRoot.host(rel);
        this.#create(rel, () => symlinkSync(Buffer.from(header.linkpath, 'latin1'), path));
        this.#finishNode(path, header, true);
        return;
      }
      case 'hardlink':
        return this.#hardlink(rel, header);
      case 'char':
      case 'block':
      case 'fifo': {
        if (header.type !== 'fifo' && !this.#rootfs.allowDeviceNodes) {
          throw hostile(header, 'is a device node; only root may create device nodes (run as root, or leave this layer out with --layer)');
        }
        const path = this.#inRoot.host(rel);
        this.#create(rel, () => native.mknod(path, header.type as 'char' | 'block' | 'fifo', header.mode, header.devmajor, header.devminor));
        this.#finishNode(path, header, false);
        return;
      }
    }
  }

  #directory(rel: string, header: TarHeader): void {
    const path = this.#inRoot.host(rel);
    const existing = lstatOrNull(path);
    if (existing && !existing.isDirectory()) this.#remove(rel, existing);
    if (!existing?.isDirectory()) mkdirSync(path, 0o700);
    if (this.#rootfs.preserveOwnership) lchownSync(path, header.uid, header.gid);
    // Kept writable while layers fill it; the real mode and mtime are set in finish().
    chmodSync(path, header.mode | 0o700);
    this.#xattrs(header, (name, value) => native.setXattr(path, name, value), false);
    this.#rootfs.deferred.set(rel, { mode: header.mode, mtime: header.mtime });
  }

  #hardlink(rel: string, header: TarHeader): void {
    const sourceParts = archivePath(header.linkpath, header);
    if (sourceParts.length === 0) throw hostile(header, 'is a hardlink to the root directory');
    const sourceDir = this.#inRoot.existingDir(sourceParts.slice(0, -1));
    const sourceRel = sourceDir === null ? null : sourceDir === '' ? sourceParts[sourceParts.length - 1]! : `${sourceDir}/${sourceParts[sourceParts.length - 1]}`;
    const source = sourceRel === null ? null : lstatOrNull(this.#inRoot.host(sourceRel));
    if (source === null || sourceRel === null) throw new ExtractionError(`${display(header.path)}: its hardlink target ${display(header.linkpath)} does not exist in the image`, display(header.path));
    if (source.isDirectory()) throw hostile(header, `is a hardlink to a directory (${display(header.linkpath)})`);
    const existing = lstatOrNull(this.#inRoot.host(rel));
    if (existing && existing.ino === source.ino && existing.dev === source.dev) return; // already linked, or a link to itself
    // link(2) does not follow a symlink source: a hardlink to a symlink links the symlink.
    this.#create(rel, () => linkSync(this.#inRoot.host(sourceRel), this.#inRoot.host(rel)), existing);
  }

  /** Ownership, mode, xattrs and time of a symlink, device or fifo, never following it. */
  #finishNode(path: Buffer, header: TarHeader, isSymlink: boolean): void {
    if (this.#rootfs.preserveOwnership) lchownSync(path, header.uid, header.gid);
    if (!isSymlink) chmodSync(path, header.mode); // mknod applied the umask; the node was just made, not a link
    this.#xattrs(header, (name, value) => native.setXattr(path, name, value), isSymlink);
    native.utimes(path, header.mtime.sec, header.mtime.nsec);
  }

  #whiteout(parentParts: string[], name: string, header: TarHeader): void {
    // A whiteout below something that is not (or no longer) a directory deletes nothing.
    const dir = this.#inRoot.existingDir(parentParts);
    if (name === OPAQUE_WHITEOUT) {
      if (dir !== null) this.#removeLower(dir);
      return;
    }
    if (name.startsWith(AUFS_META_PREFIX)) return;
    const victim = name.slice(WHITEOUT_PREFIX.length);
    if (victim === '' || victim === '.' || victim === '..') throw hostile(header, 'is a whiteout of an invalid name');
    if (dir === null) return;
    const rel = dir === '' ? victim : `${dir}/${victim}`;
    const existing = lstatOrNull(this.#inRoot.host(rel));
    if (existing) this.#remove(rel, existing);
  }

  /** An opaque directory: removes what lower layers put in it, keeps what this layer wrote. */
  #removeLower(dirRel: string): void {
    for (const child of readdirSync(this.#inRoot.host(dirRel), { encoding: 'buffer' })) {
      const rel = dirRel === '' ? child.toString('latin1') : `${dirRel}/${child.toString('latin1')}`;
      const stat = lstatOrNull(this.#inRoot.host(rel));
      if (!stat) continue;
      if (!this.#written.has(rel)) this.#remove(rel, stat);
      else if (stat.isDirectory()) this.#removeLower(rel);
    }
  }

  /** Creates a node at `rel` with `make`, replacing whatever a lower layer put there. */
  #create<T>(rel: string, make: () => T, existing?: Stats | null): T {
    if (existing) this.#remove(rel, existing);
    try {
      return make();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || existing) throw error;
    }
    this.#remove(rel, lstatOrNull(this.#inRoot.host(rel))!);
    return make();
  }

  /** Removes what is at `rel` (a directory with its content), never following a symlink. */
  #remove(rel: string, stat: Stats): void {
    const path = this.#inRoot.host(rel);
    if (stat.isDirectory()) {
      removeTree(path);
      // Forget the removed directories' deferred metadata: a later directory at the same path is another one.
      for (const key of this.#rootfs.deferred.keys()) if (key === rel || key.startsWith(`${rel}/`)) this.#rootfs.deferred.delete(key);
    } else {
      unlinkSync(path);
    }
    if (stat.isDirectory() || stat.isSymbolicLink()) this.#inRoot.invalidate();
  }

  #markWritten(rel: string): void {
    for (let path = rel; path !== '' && !this.#written.has(path); path = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '') {
      this.#written.add(path);
    }
  }

  /** Applies the entry's xattrs with `set`; records those this process may not or cannot set. */
  #xattrs(header: TarHeader, set: (name: string, value: Buffer) => void, isSymlink: boolean): void {
    for (const [name, value] of header.xattrs) {
      const isUser = name.startsWith('user.');
      if (!isUser && !this.#rootfs.canSetAnyXattr) {
        this.#skip(name, 'only root may set attributes outside the user.* namespace');
        continue;
      }
      if (isUser && isSymlink) {
        this.#skip(name, 'Linux allows no user.* attributes on symlinks');
        continue;
      }
      try {
        set(name, value);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw error;
        this.#skip(name, 'the target filesystem does not support it');
      }
    }
  }

  #skip(name: string, reason: string): void {
    const seen = this.#rootfs.skipped.get(name);
    if (seen) seen.entries++;
    else this.#rootfs.skipped.set(name, { entries: 1, reason });
  }
}

/** Removes a directory tree by its byte path, never following symlinks. */
function removeTree(path: Buffer): void {
  for (const name of readdirSync(path, { encoding: 'buffer' })) {
    const child = Buffer.concat([path, SLASH, name]);
    if (lstatOrNull(child)?.isDirectory()) removeTree(child);
    else unlinkSync(child);
  }
  rmdirSync(path);
}
const SLASH = Buffer.from('/');

/** Splits an archive path into components, refusing absolute paths and `..`. */
function archivePath(path: string, header: TarHeader): string[] {
  if (path.startsWith('/')) throw hostile(header, `uses the absolute path ${display(path)}`);
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw hostile(header, `uses ".." in ${display(path)} to climb out of the extraction directory`);
  return parts;
}

function hostile(header: TarHeader, what: string): ExtractionError {
  return new ExtractionError(`refusing layer entry ${display(header.path)}: it ${what}`, display(header.path));
}

const ERRNO_HINTS: Record<string, string> = {
  ENAMETOOLONG: 'the name or path is too long for this system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exhausted',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the target filesystem is read-only',
  EMLINK: 'too many links',
  EFBIG: 'the file is too large for the target filesystem',
};

function entryError(header: TarHeader, error: unknown): ExtractionError {
  if (error instanceof ExtractionError) return error;
  const entry = display(header.path);
  if (error instanceof NotADirectoryError) {
    return new ExtractionError(`${entry}: ${display(error.rel)} is not a directory, so the entry has no place to go`, entry, { cause: error });
  }
  const { code, syscall } = error as NodeJS.ErrnoException;
  const what = code ? `${ERRNO_HINTS[code] ?? code} (${code}${syscall ? ` in ${syscall}` : ''})` : (error as Error).message;
  return new ExtractionError(`cannot extract ${entry} (${header.type}): ${what}`, entry, { cause: error });
}

/** node:zlib's errors carry a `Z_…` code (a bad header, a failed check). */
function isDecompressionError(error: unknown): error is Error {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string' && (error as NodeJS.ErrnoException).code!.startsWith('Z_');
}

function asExtractionError(error: unknown): Error {
  if (error instanceof TarFormatError) return new ExtractionError(`the layer is not a valid tar archive: ${error.message}`, undefined, { cause: error });
  return error as Error;
}
