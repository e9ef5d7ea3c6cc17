/**
 * Directories inside the extraction root, resolved the way container
 * runtimes resolve them (containerd's `fs.RootPath`, umoci's securejoin):
 * a symlink met on the way is followed *inside* the root, an absolute one
 * from the root, and `..` stops at the root. So a layer can write through
 * `bin -> usr/bin` or `var/run -> /run`, and no path ever leads outside.
 *
 * Paths are byte strings (see tar-reader.ts). A resolved path is "rel":
 * relative to the root, `/`-joined, '' for the root itself, and free of
 * symlinks, so the host path `root/rel` is exactly what the kernel will open.
 * Results are cached until the caller removes a directory or a symlink.
 */
import { lstatSync, mkdirSync, readlinkSync, type Stats } from 'node:fs';

const MAX_SYMLINK_HOPS = 255;

/** A component on the way is something other than a directory (or a symlink to one). */
export class NotADirectoryError extends Error {
  override name = 'NotADirectoryError';
  constructor(readonly rel: string) {
    super(`${rel} is not a directory`);
  }
}

export class InRoot {
  /** The root's real path, as a byte string. */
  readonly root: string;
  readonly #cache = new Map<string, string>();

  constructor(root: string) {
    this.root = root;
  }

  /** The host path of a resolved rel, as bytes for the fs calls (the root itself as `root/`). */
  host(rel: string): Buffer {
    return Buffer.from(`${this.root}/${rel}`, 'latin1');
  }

  /**
   * The directory that archive components `parts` name, creating missing
   * ones with mode 0755 (`onCreate` hears of each). Throws
   * NotADirectoryError when a component is a file.
   */
  dir(parts: readonly string[], onCreate: (rel: string) => void): string {
    return this.#resolve(parts, onCreate)!;
  }

  /** The same without creating anything: null when a component is missing or not a directory. */
  existingDir(parts: readonly string[]): string | null {
    return this.#resolve(parts, undefined);
  }

  /** Forget every resolution: call after removing or replacing a directory or a symlink. */
  invalidate(): void {
    this.#cache.clear();
  }

  #resolve(parts: readonly string[], onCreate: ((rel: string) => void) | undefined): string | null {
    // Start from the longest prefix already resolved.
    let known = parts.length;
    let current: string | undefined;
    // Stryker disable next-line BlockStatement: without the cache each path is resolved from the root: slower, the same result
    for (; known > 0; known--) {
      // Stryker disable next-line MethodExpression: the whole path as the key hits only at known === parts.length, where it is the same key
      current = this.#cache.get(parts.slice(0, known).join('/'));
      if (current !== undefined) break;
    }
    current ??= '';
    const walk = { hops: 0 };
    for (let i = known; i < parts.length; i++) {
      const next = this.#step(current, parts[i]!, onCreate, walk);
      if (next === null) return null;
      current = next;
      this.#cache.set(parts.slice(0, i + 1).join('/'), current);
    }
    return current;
  }

  /** Resolves one more component below the resolved `current`. */
  #step(current: string, name: string, onCreate: ((rel: string) => void) | undefined, walk: { hops: number }): string | null {
    const rel = current === '' ? name : `${current}/${name}`;
    const stat = lstatOrNull(this.host(rel));
    if (stat === null) {
      if (!onCreate) return null;
      mkdirSync(this.host(rel), 0o755);
      onCreate(rel);
      return rel;
    }
    if (stat.isDirectory()) return rel;
    if (!stat.isSymbolicLink()) {
      if (!onCreate) return null;
      throw new NotADirectoryError(rel);
    }
    if (++walk.hops > MAX_SYMLINK_HOPS) throw new NotADirectoryError(`${rel} (more than ${MAX_SYMLINK_HOPS} symlinks on the way)`);
    const target = readlinkSync(this.host(rel), { encoding: 'buffer' }).toString('latin1');
    let resolved: string | null = target.startsWith('/') ? '' : current;
    for (const part of target.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') resolved = resolved.includes('/') ? resolved.slice(0, resolved.lastIndexOf('/')) : '';
      else resolved = this.#step(resolved, part, onCreate, walk);
      if (resolved === null) return null;
    }
    return resolved;
  }
}

export function lstatOrNull(path: Buffer): Stats | null {
  return lstatSync(path, { throwIfNoEntry: false }) ?? null;
}
