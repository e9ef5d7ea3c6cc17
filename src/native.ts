/**
 * Loads the N-API addon (native/seqpacket.c, fsops.c, blobreader.c): prebuilt for
 * linux-x64 and linux-arm64 (scripts/prebuild.sh), or built from source.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeChannel {
  send(packet: Buffer): void;
  ref(): void;
  unref(): void;
  close(): void;
}

/**
 * Called once per received packet: `(error)` on a socket error or truncated
 * packet, `(null, null)` at end of stream, `(undefined, data, fds)` otherwise.
 */
export type PacketCallback = (error: (Error & { code?: string }) | null | undefined, data: Buffer | null | undefined, fds: number[] | undefined) => void;

/** A blob pipe read (and hashed) on a thread of its own: native/blobreader.c. */
export interface NativeBlobReader {
  /**
   * Whether the consumer takes chunks (made paused). While flowing, the reader
   * thread reads one 256 KiB block ahead, and the constructor's
   * callback gets each as a Buffer, in order (null at EOF), never inside this call.
   * Does nothing once the end was delivered, or once closed.
   */
  setFlowing(flowing: boolean): void;
  /** The hex digest of every byte read, once EOF was delivered (when made with an algorithm). */
  digest(): string;
  /** Cancels a read in flight, joins the thread, closes the fd; no callback follows. Idempotent. */
  close(): void;
}

interface Addon {
  Channel: new (fd: number, onPacket: PacketCallback) => NativeChannel;
  socketPair(): [number, number];
  createSecretFd(data: Buffer): number;
  /** mknod(2); `path` holds the name's exact bytes. */
  mknod(path: Buffer, kind: 'char' | 'block' | 'fifo', mode: number, major: number, minor: number): void;
  /** utimensat(2) with AT_SYMLINK_NOFOLLOW: atime and mtime, to the nanosecond. */
  utimes(path: Buffer, seconds: number, nanoseconds: number): void;
  /** futimens(2): atime and mtime, to the nanosecond. */
  futimes(fd: number, seconds: number, nanoseconds: number): void;
  /** lsetxattr(2). */
  setXattr(path: Buffer, name: string, value: Buffer): void;
  /** fsetxattr(2). */
  fsetXattr(fd: number, name: string, value: Buffer): void;
  /** llistxattr(2). */
  listXattrs(path: Buffer): string[];
  /** lgetxattr(2). */
  getXattr(path: Buffer, name: string): Buffer;
  /** fcntl(F_SETPIPE_SZ): the new capacity, or -errno. */
  setPipeSize(fd: number, size: number): number;
  /** Reads a pipe to EOF (at most `maxBytes`), closes it, calls back once. */
  readAll(fd: number, maxBytes: number, callback: (error: (Error & { code?: string }) | undefined, data: Buffer | undefined) => void): void;
  /** Takes the fd; `algorithm` (`sha256`, `sha384`, `sha512`) hashes on the reader thread. */
  BlobReader: new (fd: number, algorithm: string | null, onChunk: (error: (Error & { code?: string }) | undefined, chunk: Buffer | null | undefined) => void) => NativeBlobReader;
  /** Whether BlobReader can hash (the Node process's OpenSSL was found). */
  blobHashAvailable: boolean;
}

/** The package's root: the nearest directory up from this file with our package.json. */
function packageRoot(): string {
  // dist/ and the test build live at different depths.
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (manifest.name === 'containers-image-proxy') return dir;
    } catch {
      // no package.json here
    }
    if (dirname(dir) === dir) throw new Error('containers-image-proxy: cannot find the package root (package.json) above the native addon loader');
  }
}

/** What to do where no prebuilt addon fits: the exact commands. */
function buildHint(root: string): string {
  return (
    `Build it from the package's source: install python3, make and a C compiler ` +
    `(Debian/Ubuntu: apt-get install python3 make gcc; Fedora/RHEL: dnf install python3 make gcc; Alpine: apk add python3 make gcc musl-dev linux-headers), ` +
    `then run: cd ${JSON.stringify(root)} && npm run build:addon`
  );
}

/**
 * Finds and loads the addon with node-gyp-build: a local build
 * (build/Release/seqpacket.node, made by `npm run build:addon`) if there is
 * one, else the prebuilt binary for this platform from prebuilds/ (linux-x64
 * and linux-arm64, glibc 2.28 or newer), shipped in the npm package, so
 * installing needs no compiler and runs no install script.
 */
function load(): { addon: Addon; path: string } {
  const require = createRequire(import.meta.url);
  const root = packageRoot();
  const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };
  let path: string;
  try {
    path = nodeGypBuild.path(root);
  } catch {
    const libc = glibcVersion();
    throw new Error(
      `containers-image-proxy: no native addon for ${process.platform}-${process.arch}` +
        `${libc === null ? ' with musl libc' : ''}: the package ships prebuilt ones for linux-x64 and linux-arm64 (glibc 2.28 or newer), ` +
        `and ${join(root, 'build', 'Release', 'seqpacket.node')} has not been built. ${buildHint(root)}`,
    );
  }
  try {
    return { addon: require(path) as Addon, path };
  } catch (error) {
    throw new Error(`containers-image-proxy: the native addon ${path} does not load here (${(error as Error).message.split('\n')[0]}). ${buildHint(root)}`, { cause: error });
  }
}

/** glibc's version from the process report, null where the C library is another (musl). */
function glibcVersion(): string | null {
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  return header?.glibcVersionRuntime ?? null;
}

const loaded = load();
export const native: Addon = loaded.addon;
/** The file the addon was loaded from (tests check it is the prebuilt one). */
export const nativeAddonPath: string = loaded.path;
