/**
 * A minimal, deterministic ustar writer for test fixtures. It writes exactly
 * what it is told, including hostile entries (`../x`, absolute paths, links
 * out of the tree), which is the point: real archivers refuse to.
 */
export type TarEntry = (
  | { type: 'file'; name: Name; content: Buffer | string; mode?: number; mtime?: number; uid?: number; gid?: number }
  | { type: 'dir'; name: Name; mode?: number; mtime?: number; uid?: number; gid?: number }
  | { type: 'symlink'; name: Name; target: Name; mtime?: number; uid?: number; gid?: number }
  | { type: 'hardlink'; name: Name; target: Name; mtime?: number }
  | { type: 'char' | 'block' | 'fifo'; name: Name; major?: number; minor?: number; mode?: number; mtime?: number; uid?: number; gid?: number }
) & {
  /** PAX records written in an `x` header before the entry (values are bytes). */
  pax?: Record<string, string | Buffer>;
  /** Overrides the type flag (to write types real archivers would not). */
  typeflag?: string;
};

/** A name as text (UTF-8) or as its exact bytes. */
type Name = string | Buffer;

const TYPE_FLAGS = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' } as const;
const DEFAULT_MTIME = 1_700_000_000;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function header(entry: TarEntry, size: number, typeflag: string = entry.typeflag ?? TYPE_FLAGS[entry.type]): Buffer {
  const block = Buffer.alloc(512);
  let name = Buffer.from(entry.name);
  let prefix = Buffer.alloc(0);
  if (name.length > 100) {
    const cut = name.lastIndexOf('/', 155);
    if (cut <= 0 || name.length - cut - 1 > 100) throw new Error(`tar name too long (use a pax path): ${entry.name}`);
    prefix = name.subarray(0, cut);
    name = name.subarray(cut + 1);
  }
  const defaultMode = entry.type === 'dir' ? 0o755 : entry.type === 'symlink' ? 0o777 : 0o644;
  const mode = 'mode' in entry && entry.mode !== undefined ? entry.mode : defaultMode;
  const uid = 'uid' in entry && entry.uid !== undefined ? entry.uid : 0;
  const gid = 'gid' in entry && entry.gid !== undefined ? entry.gid : 0;
  const mtime = 'mtime' in entry && entry.mtime !== undefined ? entry.mtime : DEFAULT_MTIME;
  name.copy(block, 0);
  block.write(octal(mode, 8), 100);
  block.write(octal(uid, 8), 108);
  block.write(octal(gid, 8), 116);
  block.write(octal(size, 12), 124);
  block.write(octal(mtime, 12), 136);
  block.write('        ', 148); // checksum placeholder
  block.write(typeflag, 156, 'latin1');
  if (entry.type === 'symlink' || entry.type === 'hardlink') Buffer.from(entry.target).subarray(0, 100).copy(block, 157);
  block.write('ustar\0', 257);
  block.write('00', 263);
  block.write('root', 265);
  block.write('root', 297);
  if (entry.type === 'char' || entry.type === 'block') {
    block.write(octal(entry.major ?? 0, 8), 329);
    block.write(octal(entry.minor ?? 0, 8), 337);
  }
  prefix.copy(block, 345);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(octal(sum, 7) + ' ', 148);
  return block;
}

/** Builds a whole tar archive in memory. */
export function tar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  const block = (data: Buffer) => [data, Buffer.alloc((512 - (data.length % 512)) % 512)];
  for (const entry of entries) {
    if (entry.pax) {
      const records = paxRecords(entry.pax);
      parts.push(header({ type: 'file', name: 'PaxHeader', content: '' }, records.length, 'x'), ...block(records));
    }
    const content = entry.type === 'file' ? Buffer.from(entry.content) : Buffer.alloc(0);
    parts.push(header(entry, content.length), ...block(content));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** PAX records: "LENGTH KEY=VALUE\n", where LENGTH counts the whole record. */
function paxRecords(records: Record<string, string | Buffer>): Buffer {
  return Buffer.concat(
    Object.entries(records).map(([key, value]) => {
      const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
      let length = body.length + 1;
      while (String(length).length + body.length !== length) length++;
      return Buffer.concat([Buffer.from(String(length)), body]);
    }),
  );
}

/** The header of a single regular file, for streaming large contents. */
export function fileHeader(name: string, size: number): Buffer {
  return header({ type: 'file', name, content: '' }, size);
}
