/**
 * A minimal, deterministic ustar writer for test fixtures. It writes exactly
 * what it is told, including hostile entries (`../x`, absolute paths, links
 * out of the tree), which is the point: real archivers refuse to.
 */
export type TarEntry =
  | { type: 'file'; name: string; content: Buffer | string; mode?: number; mtime?: number; uid?: number; gid?: number }
  | { type: 'dir'; name: string; mode?: number; mtime?: number; uid?: number; gid?: number }
  | { type: 'symlink'; name: string; target: string; mtime?: number }
  | { type: 'hardlink'; name: string; target: string; mtime?: number }
  | { type: 'char' | 'block' | 'fifo'; name: string; major?: number; minor?: number; mode?: number };

const TYPE_FLAGS = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' } as const;
const DEFAULT_MTIME = 1_700_000_000;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function header(entry: TarEntry, size: number): Buffer {
  const block = Buffer.alloc(512);
  let name = entry.name;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new Error(`tar name too long: ${name}`);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  const defaultMode = entry.type === 'dir' ? 0o755 : entry.type === 'symlink' ? 0o777 : 0o644;
  const mode = 'mode' in entry && entry.mode !== undefined ? entry.mode : defaultMode;
  const uid = 'uid' in entry && entry.uid !== undefined ? entry.uid : 0;
  const gid = 'gid' in entry && entry.gid !== undefined ? entry.gid : 0;
  const mtime = 'mtime' in entry && entry.mtime !== undefined ? entry.mtime : DEFAULT_MTIME;
  block.write(name, 0, 100);
  block.write(octal(mode, 8), 100);
  block.write(octal(uid, 8), 108);
  block.write(octal(gid, 8), 116);
  block.write(octal(size, 12), 124);
  block.write(octal(mtime, 12), 136);
  block.write('        ', 148); // checksum placeholder
  block.write(TYPE_FLAGS[entry.type], 156);
  if (entry.type === 'symlink' || entry.type === 'hardlink') block.write(entry.target, 157, 100);
  block.write('ustar\0', 257);
  block.write('00', 263);
  block.write('root', 265);
  block.write('root', 297);
  if (entry.type === 'char' || entry.type === 'block') {
    block.write(octal(entry.major ?? 0, 8), 329);
    block.write(octal(entry.minor ?? 0, 8), 337);
  }
  block.write(prefix, 345, 155);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(octal(sum, 7) + ' ', 148);
  return block;
}

/** Builds a whole tar archive in memory. */
export function tar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const content = entry.type === 'file' ? Buffer.from(entry.content) : Buffer.alloc(0);
    parts.push(header(entry, content.length), content, Buffer.alloc((512 - (content.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** The header of a single regular file, for streaming large contents. */
export function fileHeader(name: string, size: number): Buffer {
  return header({ type: 'file', name, content: '' }, size);
}
