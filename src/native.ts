/** Loads the N-API addon (native/seqpacket.c, native/fsops.c) built by node-gyp at install time. */
import { existsSync } from 'node:fs';
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
}

function load(): Addon {
  const require = createRequire(import.meta.url);
  // dist/ and the test build live at different depths: walk up to the package root.
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, 'build', 'Release', 'seqpacket.node');
    if (existsSync(candidate)) return require(candidate) as Addon;
    if (dirname(dir) === dir) break;
  }
  throw new Error(
    'containers-image-proxy: the native addon build/Release/seqpacket.node is missing; ' +
      'run `npm rebuild containers-image-proxy` (needs python3, make and a C compiler)',
  );
}

export const native: Addon = load();
