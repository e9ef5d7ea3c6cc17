/**
 * A streaming tar reader that keeps names as the bytes they are.
 *
 * Image layers are tar archives written by Go's archive/tar, GNU tar,
 * buildah, umoci and others. File names in them are bytes, not text (a
 * Debian package may ship `caf\xe9`), so every name here is a "byte string":
 * a JS string whose char codes are the bytes (latin1). The reader is
 * synchronous and push-based: feed it chunks, it calls the sink for each
 * entry, its data (with the offset in the file, which matters for sparse
 * files) and its end. It understands ustar, GNU (long names, old sparse) and
 * PAX (path, linkpath, size, ids, mtime with nanoseconds, xattrs, sparse 0.0,
 * 0.1 and 1.0); any entry type it cannot represent is an error naming it.
 */

export type EntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarHeader {
  type: EntryType;
  /** The raw type flag, for messages. */
  typeflag: string;
  /** The entry's path: bytes, as a latin1 string. */
  path: string;
  /** Symlink target or hardlink source: bytes, as a latin1 string. */
  linkpath: string;
  mode: number;
  uid: number;
  gid: number;
  /** The file's logical size (a sparse file's size with its holes). */
  size: number;
  mtime: { sec: number; nsec: number };
  devmajor: number;
  devminor: number;
  /** Extended attributes, in archive order (`SCHILY.xattr.*`, `LIBARCHIVE.xattr.*`). */
  xattrs: Array<[name: string, value: Buffer]>;
  /** Data segments of a sparse file as [offset, length]; undefined for a dense file. */
  sparse?: Array<[offset: number, length: number]>;
}

export interface TarSink {
  entry(header: TarHeader): void;
  /** File data (regular files only), `offset` bytes into the file. */
  data(chunk: Buffer, offset: number): void;
  entryEnd(): void;
}

/** The archive is malformed; `message` says where and how. */
export class TarFormatError extends Error {
  override name = 'TarFormatError';
}

const BLOCK = 512;
const EMPTY = Buffer.alloc(0);
/** PAX and GNU long-name headers are buffered whole: cap them. */
const MAX_META_BYTES = 8 * 1024 * 1024;
const MAX_SPARSE_SEGMENTS = 1_000_000;

const TYPES: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  S: 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  D: 'directory', // GNU dump directory: its data is a listing, not content
  '6': 'fifo',
};

type State =
  | { kind: 'header' }
  | { kind: 'meta'; typeflag: string; remaining: number; padding: number; parts: Buffer[] }
  | { kind: 'sparse-ext'; header: TarHeader; dataSize: number }
  | { kind: 'sparse-map'; header: TarHeader; dataSize: number; read: number; line: string; count?: number; numbers: number[] }
  | { kind: 'data'; file: boolean; remaining: number; padding: number; segments: Array<[number, number]>; segment: number; inSegment: number }
  | { kind: 'padding'; remaining: number }
  | { kind: 'end' };

interface Pending {
  pax: Map<string, string>;
  paxSparse: Array<[number, number]>;
  paxXattrs: Array<[string, Buffer]>;
  longName?: string;
  longLink?: string;
}

export class TarReader {
  readonly #sink: TarSink;
  #state: State = { kind: 'header' };
  #carry: Buffer = EMPTY;
  #pending: Pending = newPending();
  #zeroBlocks = 0;
  /** Bytes consumed so far: archive offsets in error messages. */
  #offset = 0;

  constructor(sink: TarSink) {
    this.#sink = sink;
  }

  /** Whether the end-of-archive marker was seen. */
  get ended(): boolean {
    return this.#state.kind === 'end';
  }

  push(chunk: Buffer): void {
    let input = chunk;
    if (this.#carry.length > 0) {
      // A block was split between chunks: complete just that block, not a copy of the whole chunk.
      const missing = BLOCK - this.#carry.length;
      if (input.length < missing) {
        this.#carry = Buffer.concat([this.#carry, input]);
        return;
      }
      const block = Buffer.concat([this.#carry, input.subarray(0, missing)]);
      this.#carry = EMPTY;
      this.#offset += this.#step(block); // every state that waits for a whole block takes exactly one
      input = input.subarray(missing);
    }
    while (input.length > 0 && this.#state.kind !== 'end') {
      const used = this.#step(input);
      if (used === 0) {
        this.#carry = Buffer.from(input); // less than a block: wait for more (copied: the chunk may be reused)
        return;
      }
      this.#offset += used;
      input = input.subarray(used);
    }
  }

  /** The input is complete: throws if it stopped inside an entry. */
  end(): void {
    const state = this.#state;
    // Go's reader (and so most runtimes) accept an archive that ends at an
    // entry boundary without the two zero blocks.
    if (state.kind === 'end' || (state.kind === 'header' && this.#carry.length === 0 && this.#pendingIsEmpty())) return;
    throw new TarFormatError(`the layer ends in the middle of a tar entry (at byte ${this.#offset + this.#carry.length}): it is truncated`);
  }

  #pendingIsEmpty(): boolean {
    const p = this.#pending;
    return p.pax.size === 0 && p.longName === undefined && p.longLink === undefined;
  }

  /** Consumes a prefix of `input`; 0 when a whole block is needed and not there yet. */
  #step(input: Buffer): number {
    const state = this.#state;
    switch (state.kind) {
      case 'header':
        if (input.length < BLOCK) return 0;
        this.#header(input.subarray(0, BLOCK));
        return BLOCK;
      case 'meta': {
        const take = Math.min(input.length, state.remaining);
        state.parts.push(Buffer.from(input.subarray(0, take)));
        state.remaining -= take;
        if (state.remaining === 0) {
          this.#meta(state.typeflag, Buffer.concat(state.parts));
          this.#state = state.padding ? { kind: 'padding', remaining: state.padding } : { kind: 'header' };
        }
        return take;
      }
      case 'padding': {
        const take = Math.min(input.length, state.remaining);
        state.remaining -= take;
        if (state.remaining === 0) this.#state = { kind: 'header' };
        return take;
      }
      case 'sparse-ext': {
        if (input.length < BLOCK) return 0;
        const block = input.subarray(0, BLOCK);
        readOldSparse(block, 0, 21, state.header, this.#offset);
        if (block[504] === 0) this.#startData(state.header, state.dataSize);
        return BLOCK;
      }
      case 'sparse-map':
        return this.#sparseMap(state, input);
      case 'data':
        return this.#data(state, input);
      case 'end':
        return input.length;
    }
  }

  #header(block: Buffer): void {
    if (isZero(block)) {
      if (++this.#zeroBlocks === 2) this.#state = { kind: 'end' };
      return;
    }
    if (this.#zeroBlocks > 0) throw new TarFormatError(`invalid tar header after a zero block at byte ${this.#offset}`);
    verifyChecksum(block, this.#offset);
    const typeflag = String.fromCharCode(block[156]!);
    const size = readNumber(block, 124, 12, 'size', this.#offset);
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > MAX_META_BYTES) throw new TarFormatError(`a tar ${typeflag} header of ${size} bytes at byte ${this.#offset} is larger than the ${MAX_META_BYTES}-byte limit`);
      const padding = pad(size);
      if (size === 0) {
        this.#meta(typeflag, Buffer.alloc(0));
        this.#state = { kind: 'header' };
      } else {
        this.#state = { kind: 'meta', typeflag, remaining: size, padding, parts: [] };
      }
      return;
    }
    const header = this.#build(block, typeflag, size);
    // Links, devices, directories and fifos have no data whatever their size says, as Go's
    // archive/tar (and so containerd and podman) read them: the next block is a header.
    // GNU dump directories ('D') keep theirs (a listing, skipped).
    const storedSize = this.#pending.pax.has('size') ? paxNumber(this.#pending.pax.get('size')!, 'size') : size;
    const dataSize = header.type !== 'file' && typeflag !== 'D' ? 0 : storedSize;
    const pax = this.#pending.pax;
    this.#pending = newPending();

    if (typeflag === 'S') {
      // Old GNU sparse: four segments in the header, more in extension blocks.
      header.sparse = [];
      readOldSparse(block, 386, 4, header, this.#offset);
      header.size = readNumber(block, 483, 12, 'real size', this.#offset);
      if (block[482] !== 0) {
        this.#state = { kind: 'sparse-ext', header, dataSize };
        return;
      }
    } else if (pax.get('GNU.sparse.major') === '1' && pax.get('GNU.sparse.minor') === '0') {
      // PAX sparse 1.0: the map is at the start of the data, as decimal lines.
      this.#state = { kind: 'sparse-map', header, dataSize, read: 0, line: '', numbers: [] };
      return;
    }
    this.#startData(header, dataSize);
  }

  /** A header's fields, with pending PAX records and GNU long names applied. */
  #build(block: Buffer, typeflag: string, size: number): TarHeader {
    const pending = this.#pending;
    const pax = pending.pax;
    const ustar = block.toString('latin1', 257, 263) === 'ustar\0';
    let path = pending.longName ?? pax.get('path');
    if (path === undefined) {
      const name = cString(block, 0, 100);
      const prefix = ustar ? cString(block, 345, 155) : '';
      path = prefix ? `${prefix}/${name}` : name;
    }
    path = pax.get('GNU.sparse.name') ?? path;
    const linkpath = pending.longLink ?? pax.get('linkpath') ?? cString(block, 157, 100);
    let type = TYPES[typeflag];
    if (type === undefined) {
      throw new TarFormatError(`${display(path)}: unsupported tar entry type ${JSON.stringify(typeflag)} (${describeType(typeflag)}); it cannot be extracted`);
    }
    if (typeflag === '\0' && path.endsWith('/')) type = 'directory'; // pre-POSIX archives mark directories so
    const offset = this.#offset;
    const header: TarHeader = {
      type,
      typeflag,
      path,
      linkpath,
      mode: readNumber(block, 100, 8, 'mode', offset) & 0o7777,
      uid: pax.has('uid') ? paxNumber(pax.get('uid')!, 'uid') : readNumber(block, 108, 8, 'uid', offset),
      gid: pax.has('gid') ? paxNumber(pax.get('gid')!, 'gid') : readNumber(block, 116, 8, 'gid', offset),
      size: type === 'file' ? (pax.has('size') ? paxNumber(pax.get('size')!, 'size') : size) : 0,
      mtime: pax.has('mtime') ? paxTime(pax.get('mtime')!) : { sec: readNumber(block, 136, 12, 'mtime', offset), nsec: 0 },
      devmajor: type === 'char' || type === 'block' ? readNumber(block, 329, 8, 'devmajor', offset) : 0,
      devminor: type === 'char' || type === 'block' ? readNumber(block, 337, 8, 'devminor', offset) : 0,
      xattrs: pending.paxXattrs,
    };
    const realSize = pax.get('GNU.sparse.realsize') ?? pax.get('GNU.sparse.size');
    if (realSize !== undefined) header.size = paxNumber(realSize, 'GNU.sparse.realsize');
    if (pending.paxSparse.length) header.sparse = pending.paxSparse;
    const map = pax.get('GNU.sparse.map');
    if (map !== undefined) header.sparse = parseSparseList(map.split(','), 'GNU.sparse.map');
    return header;
  }

  /** A PAX, GNU long name or long link header's data. */
  #meta(typeflag: string, data: Buffer): void {
    switch (typeflag) {
      case 'L':
        this.#pending.longName = cString(data, 0, data.length);
        return;
      case 'K':
        this.#pending.longLink = cString(data, 0, data.length);
        return;
      // Stryker disable next-line StringLiteral: with no case for 'g' the switch does nothing all the same; the case says so for the reader
      case 'g':
        return; // global PAX headers: ignored, as Go's archive/tar (and so containerd and umoci) do
      case 'x':
        parsePax(data, this.#pending);
        return;
    }
  }

  #sparseMap(state: Extract<State, { kind: 'sparse-map' }>, input: Buffer): number {
    // The map is whole 512-byte blocks of "count\n(offset\nlength\n)*" then padding. Each
    // block is read once (a line may go on in the next one): a map is up to 8 MiB.
    if (input.length < BLOCK) return 0;
    state.read += BLOCK;
    const invalid = () => new TarFormatError(`${display(state.header.path)}: invalid PAX sparse map`);
    const text = input.toString('latin1', 0, BLOCK);
    const lines = text.split('\n');
    lines[0] = state.line + lines[0];
    state.line = lines.pop()!;
    // What this block added to the unfinished line: the rest of it was checked with the blocks before.
    const added = lines.length === 0 ? text : state.line;
    for (const line of lines) {
      const n = decimal(line);
      if (!Number.isSafeInteger(n)) throw invalid();
      if (state.count === undefined) {
        if (n > MAX_SPARSE_SEGMENTS) throw invalid();
        state.count = n;
      } else {
        state.numbers.push(n);
      }
      if (state.numbers.length === state.count * 2) {
        const segments: Array<[number, number]> = [];
        for (let i = 0; i < state.numbers.length; i += 2) segments.push([state.numbers[i]!, state.numbers[i + 1]!]);
        state.header.sparse = segments;
        this.#startData(state.header, state.dataSize - state.read);
        return BLOCK; // the rest of the block is padding
      }
    }
    if (state.read >= state.dataSize) throw new TarFormatError(`${display(state.header.path)}: its sparse map is larger than its data`);
    if (!/^\d*$/.test(added)) throw invalid(); // not even the start of a number
    if (state.read >= MAX_META_BYTES) throw new TarFormatError(`${display(state.header.path)}: the PAX sparse map is too large`);
    return BLOCK; // the map goes on in the next block
  }

  #startData(header: TarHeader, dataSize: number): void {
    if (dataSize < 0) throw new TarFormatError(`${display(header.path)}: its sparse map is larger than its data`);
    const file = header.type === 'file';
    const segments = header.sparse ?? [[0, dataSize]];
    if (header.sparse) {
      if (!file) throw new TarFormatError(`${display(header.path)}: a ${header.type} cannot be sparse`);
      let stored = 0;
      for (const [offset, length] of segments) {
        if (offset + length > header.size) throw new TarFormatError(`${display(header.path)}: a sparse segment lies past the file's size`);
        stored += length;
      }
      if (stored !== dataSize) throw new TarFormatError(`${display(header.path)}: its sparse map describes ${stored} bytes of data, the archive holds ${dataSize}`);
    }
    this.#sink.entry(header);
    if (dataSize === 0) {
      this.#sink.entryEnd();
      this.#state = { kind: 'header' };
      return;
    }
    this.#state = { kind: 'data', file, remaining: dataSize, padding: pad(dataSize), segments, segment: 0, inSegment: 0 };
  }

  #data(state: Extract<State, { kind: 'data' }>, input: Buffer): number {
    const take = Math.min(input.length, state.remaining);
    if (state.file) {
      // Split the stored bytes along the sparse segments (one segment when dense).
      let at = 0;
      while (at < take) {
        while (state.segments[state.segment]![1] === state.inSegment) {
          state.segment++;
          state.inSegment = 0;
        }
        const [offset, length] = state.segments[state.segment]!;
        const n = Math.min(take - at, length - state.inSegment);
        this.#sink.data(input.subarray(at, at + n), offset + state.inSegment);
        state.inSegment += n;
        at += n;
      }
    }
    state.remaining -= take;
    if (state.remaining === 0) {
      this.#sink.entryEnd();
      this.#state = state.padding ? { kind: 'padding', remaining: state.padding } : { kind: 'header' };
    }
    return take;
  }
}

function newPending(): Pending {
  return { pax: new Map(), paxSparse: [], paxXattrs: [] };
}

/** PAX records: "LENGTH KEY=VALUE\n", LENGTH counting the whole record. Values are bytes. */
function parsePax(data: Buffer, pending: Pending): void {
  let at = 0;
  let sparseOffset: number | undefined;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const digits = space > at ? data.toString('latin1', at, space) : '';
    const length = decimal(digits);
    if (!Number.isSafeInteger(length) || length <= space - at || at + length > data.length || data[at + length - 1] !== 0x0a) {
      if (data.subarray(at).every((byte) => byte === 0)) return; // trailing NUL padding some writers leave
      throw new TarFormatError('invalid PAX extended header record');
    }
    const record = data.toString('latin1', space + 1, at + length - 1);
    at += length;
    const equals = record.indexOf('=');
    if (equals <= 0) throw new TarFormatError('invalid PAX extended header record (no key)');
    const key = record.slice(0, equals);
    const value = record.slice(equals + 1);
    if (key.startsWith('SCHILY.xattr.')) {
      pending.paxXattrs.push([utf8(key.slice('SCHILY.xattr.'.length)), Buffer.from(value, 'latin1')]);
    } else if (key.startsWith('LIBARCHIVE.xattr.')) {
      pending.paxXattrs.push([decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length)), Buffer.from(value, 'base64')]);
    } else if (key === 'GNU.sparse.offset') {
      sparseOffset = paxNumber(value, key);
    } else if (key === 'GNU.sparse.numbytes') {
      if (sparseOffset === undefined) throw new TarFormatError('PAX sparse 0.0: GNU.sparse.numbytes without an offset');
      pending.paxSparse.push([sparseOffset, paxNumber(value, key)]);
      sparseOffset = undefined;
    } else if (value === '') {
      pending.pax.delete(key); // an empty value removes the record
    } else {
      pending.pax.set(key, value);
    }
  }
}

function parseSparseList(items: string[], what: string): Array<[number, number]> {
  if (items.length % 2 !== 0 || items.length / 2 > MAX_SPARSE_SEGMENTS) throw new TarFormatError(`invalid ${what}`);
  const segments: Array<[number, number]> = [];
  for (let i = 0; i < items.length; i += 2) segments.push([paxNumber(items[i]!, what), paxNumber(items[i + 1]!, what)]);
  return segments;
}

/** Old GNU sparse segments of a header or extension block (`offset`: the block's, for messages) into `header.sparse`. */
function readOldSparse(block: Buffer, start: number, count: number, header: TarHeader, offset: number): void {
  const into = header.sparse!;
  for (let i = 0; i < count; i++) {
    const at = start + i * 24;
    if (block[at] === 0) return;
    into.push([readNumber(block, at, 12, 'sparse offset', offset), readNumber(block, at + 12, 12, 'sparse length', offset)]);
    if (into.length > MAX_SPARSE_SEGMENTS) throw new TarFormatError(`${display(header.path)}: more than ${MAX_SPARSE_SEGMENTS} sparse segments`);
  }
}

/** A numeric header field: octal text, or base-256 when the high bit is set. */
function readNumber(block: Buffer, start: number, length: number, field: string, offset: number): number {
  const first = block[start]!;
  if (first & 0x80) {
    if (first === 0xff) throw new TarFormatError(`negative ${field} in the tar header at byte ${offset}`);
    let value = first & 0x7f;
    for (let i = 1; i < length; i++) {
      value = value * 256 + block[start + i]!;
      if (!Number.isSafeInteger(value)) throw new TarFormatError(`the ${field} in the tar header at byte ${offset} is too large`);
    }
    return value;
  }
  const text = block.toString('latin1', start, start + length).replace(/[\0 ]+$/, '').replace(/^[\0 ]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`invalid ${field} ${JSON.stringify(text)} in the tar header at byte ${offset}`);
  return parseInt(text, 8);
}

/** Decimal digits as a number, else NaN: as Go and Python read PAX numbers (not Number()'s `0x9`, `1e1` or ` 5`). */
function decimal(text: string): number {
  return /^\d+$/.test(text) ? Number(text) : NaN;
}

function paxNumber(value: string, key: string): number {
  const n = decimal(value);
  if (!Number.isSafeInteger(n)) throw new TarFormatError(`invalid PAX ${key} ${JSON.stringify(value)}`);
  return n;
}

/** A PAX time such as "1700000000.123456789" or "-1.5", to seconds and nanoseconds. */
function paxTime(value: string): { sec: number; nsec: number } {
  const match = /^(-?)(\d+)(?:\.(\d*))?$/.exec(value);
  if (!match) throw new TarFormatError(`invalid PAX mtime ${JSON.stringify(value)}`);
  let sec = Number(match[2]);
  let nsec = Number((match[3] ?? '').slice(0, 9).padEnd(9, '0'));
  if (match[1] === '-') {
    sec = -sec;
    if (nsec > 0) {
      sec -= 1;
      nsec = 1e9 - nsec;
    }
  }
  if (!Number.isSafeInteger(sec)) throw new TarFormatError(`invalid PAX mtime ${JSON.stringify(value)}`);
  return { sec, nsec };
}

function verifyChecksum(block: Buffer, offset: number): void {
  // Not octal digits (text, compressed bytes): not a tar header, said as such below.
  const field = block.toString('latin1', 148, 156).replace(/^[\0 ]+|[\0 ]+$/g, '');
  const stored = /^[0-7]+$/.test(field) ? parseInt(field, 8) : NaN;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  if (stored !== unsigned && stored !== signed) throw new TarFormatError(`invalid tar header at byte ${offset} (checksum mismatch): the layer is not a tar archive or is corrupt`);
}

function isZero(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

function cString(buffer: Buffer, start: number, length: number): string {
  const end = buffer.indexOf(0, start);
  return buffer.toString('latin1', start, end === -1 || end > start + length ? start + length : end);
}

function pad(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function utf8(bytes: string): string {
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

function describeType(typeflag: string): string {
  const known: Record<string, string> = { V: 'GNU volume label', M: 'GNU multi-volume continuation', N: 'old GNU long name' };
  return known[typeflag] ?? 'unknown type';
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A byte-string name for people: as UTF-8 when it is valid, with other bytes
 * as \xNN, quoted and with control characters escaped.
 */
export function display(bytes: string): string {
  const buffer = Buffer.from(bytes, 'latin1');
  try {
    return JSON.stringify(strictUtf8.decode(buffer));
  } catch {
    let text = '';
    for (const byte of buffer) text += byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
    return `"${text}"`;
  }
}
