/**
 * Compares two extracted file trees entry by entry, the way the conformance
 * suite checks `extract` against an independent extractor (umoci unpack,
 * GNU tar): type, mode with special bits, owner, size and content hash,
 * symlink target, hardlink groups, mtime (ns), every xattr, rdev, and the
 * exact name bytes. Names are byte strings (latin1), shown escaped.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { native } from '../../src/native.js';

export interface EntryFacts {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  sha256?: string;
  target?: string;
  /** The first (sorted) path of the entry's hardlink group, when it has more than one name. */
  linkGroup?: string;
  mtimeNs: bigint;
  rdev: number;
  xattrs: Record<string, string>;
}

export type Snapshot = Map<string, EntryFacts>;

/** Every entry below `root` (and the root itself as ''), by relative byte path. */
export function snapshot(root: string): Snapshot {
  const result: Snapshot = new Map();
  const inodes = new Map<bigint, string[]>();
  const visit = (rel: string) => {
    const path = Buffer.from(rel === '' ? root : `${root}/${rel}`, 'latin1');
    const stat = lstatSync(path, { bigint: true });
    const facts: EntryFacts = {
      type: typeOf(stat),
      mode: Number(stat.mode & 0o7777n),
      uid: Number(stat.uid),
      gid: Number(stat.gid),
      size: stat.isFile() ? Number(stat.size) : 0,
      mtimeNs: stat.mtimeNs,
      rdev: stat.isCharacterDevice() || stat.isBlockDevice() ? Number(stat.rdev) : 0,
      xattrs: {},
    };
    for (const name of native.listXattrs(path).sort()) facts.xattrs[name] = native.getXattr(path, name).toString('hex');
    if (stat.isFile()) {
      facts.sha256 = createHash('sha256').update(readFileSync(path)).digest('hex');
      if (stat.nlink > 1n) inodes.set(stat.ino, [...(inodes.get(stat.ino) ?? []), rel]);
    }
    if (stat.isSymbolicLink()) facts.target = readlinkSync(path, { encoding: 'buffer' }).toString('latin1');
    result.set(rel, facts);
    if (stat.isDirectory()) {
      for (const name of readdirSync(path, { encoding: 'buffer' })) visit(rel === '' ? name.toString('latin1') : `${rel}/${name.toString('latin1')}`);
    }
  };
  visit('');
  for (const names of inodes.values()) {
    if (names.length < 2) continue;
    const first = [...names].sort()[0]!;
    for (const name of names) result.get(name)!.linkGroup = first;
  }
  return result;
}

function typeOf(stat: BigIntStats): string {
  if (stat.isFile()) return 'file';
  if (stat.isDirectory()) return 'directory';
  if (stat.isSymbolicLink()) return 'symlink';
  if (stat.isCharacterDevice()) return 'char';
  if (stat.isBlockDevice()) return 'block';
  if (stat.isFIFO()) return 'fifo';
  return 'socket';
}

export interface CompareOptions {
  /** Fields not to compare for some entries: (rel) => field names. */
  ignore?: (rel: string, facts: EntryFacts) => ReadonlyArray<keyof EntryFacts>;
}

/**
 * The differences between `actual` and `expected`, one line each:
 * `PATH: FIELD actual X, expected Y`, or a missing/extra entry. Empty when equal.
 */
export function compareTrees(actual: Snapshot, expected: Snapshot, options: CompareOptions = {}): string[] {
  const differences: string[] = [];
  for (const [rel, want] of expected) {
    const got = actual.get(rel);
    if (!got) {
      differences.push(`${show(rel)}: missing (expected a ${want.type})`);
      continue;
    }
    const ignored = new Set(options.ignore?.(rel, want) ?? []);
    for (const field of Object.keys(want) as Array<keyof EntryFacts>) {
      if (ignored.has(field)) continue;
      const a = format(got[field]);
      const b = format(want[field]);
      if (a !== b) differences.push(`${show(rel)}: ${field} ${a}, expected ${b}`);
    }
    if (want.linkGroup === undefined && got.linkGroup !== undefined && !ignored.has('linkGroup')) {
      differences.push(`${show(rel)}: linkGroup ${format(got.linkGroup)}, expected none`);
    }
  }
  for (const [rel, got] of actual) if (!expected.has(rel)) differences.push(`${show(rel)}: extra ${got.type}`);
  return differences;
}

function format(value: unknown): string {
  if (value === undefined) return 'none';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') return show(value);
  if (typeof value === 'number') return String(value);
  return JSON.stringify(value);
}

/** A byte-string path, printable. */
export function show(rel: string): string {
  let text = '';
  for (const char of rel) {
    const code = char.charCodeAt(0);
    text += code >= 0x20 && code < 0x7f ? char : `\\x${code.toString(16).padStart(2, '0')}`;
  }
  return rel === '' ? '(root)' : text;
}

/** Throws listing at most `limit` differences, if there are any. */
export function assertSameTree(actual: Snapshot, expected: Snapshot, what: string, options: CompareOptions = {}, limit = 40): void {
  const differences = compareTrees(actual, expected, options);
  if (differences.length === 0) return;
  const shown = differences.slice(0, limit).join('\n  ');
  throw new Error(`${what}: ${differences.length} difference(s) in ${expected.size} expected entries:\n  ${shown}${differences.length > limit ? '\n  …' : ''}`);
}
