/**
 * TarReader on hand-made archives, block by block: numeric fields (octal,
 * base-256), checksums, PAX records and times, GNU long names, old and PAX
 * sparse maps, where an archive may end, and the same events whatever the
 * chunking. Real archivers' output is covered by gnu-tar.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { display, TarFormatError, TarReader, type TarHeader } from '../../src/extract/tar-reader.js';

const BLOCK = 512;

interface Fields {
  name?: string;
  typeflag?: string;
  size?: number;
  mode?: number;
  mtime?: number;
  linkpath?: string;
  prefix?: string;
  magic?: string;
  devmajor?: number;
  devminor?: number;
  /** Raw bytes written at an offset after the fields above (for base-256 and odd encodings). */
  raw?: Array<[offset: number, bytes: Buffer | string]>;
  /** Use the signed checksum (bytes > 127 counted negative), as some old tars did. */
  signedChecksum?: boolean;
  /** Add this to the checksum (a corrupt header). */
  checksumError?: number;
}

const octal = (value: number, width: number): string => value.toString(8).padStart(width - 1, '0') + '\0';

function header(fields: Fields): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(fields.name ?? 'file', 0, 'latin1');
  block.write(octal(fields.mode ?? 0o644, 8), 100);
  block.write(octal(0, 8), 108);
  block.write(octal(0, 8), 116);
  block.write(octal(fields.size ?? 0, 12), 124);
  block.write(octal(fields.mtime ?? 1_700_000_000, 12), 136);
  block.write(fields.typeflag ?? '0', 156, 'latin1');
  if (fields.linkpath) block.write(fields.linkpath, 157, 'latin1');
  block.write(fields.magic ?? 'ustar\0', 257, 'latin1');
  block.write('00', 263);
  if (fields.devmajor !== undefined) block.write(octal(fields.devmajor, 8), 329);
  if (fields.devminor !== undefined) block.write(octal(fields.devminor, 8), 337);
  if (fields.prefix) block.write(fields.prefix, 345, 'latin1');
  for (const [offset, bytes] of fields.raw ?? []) (typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes).copy(block, offset);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += fields.signedChecksum && byte > 127 ? byte - 256 : byte;
  sum += fields.checksumError ?? 0;
  block.write(octal(sum < 0 ? 0 : sum, 7) + ' ', 148);
  return block;
}

/** Data padded to whole blocks. */
function body(data: Buffer | string): Buffer {
  const bytes = Buffer.from(data);
  return Buffer.concat([bytes, Buffer.alloc((BLOCK - (bytes.length % BLOCK)) % BLOCK)]);
}

function paxRecords(records: Array<[string, string]>): Buffer {
  return Buffer.concat(
    records.map(([key, value]) => {
      const text = ` ${key}=${value}\n`;
      let length = Buffer.byteLength(text, 'latin1') + 1;
      while (String(length).length + Buffer.byteLength(text, 'latin1') !== length) length++;
      return Buffer.from(`${length}${text}`, 'latin1');
    }),
  );
}

/** A PAX `x` header and its records. */
function pax(records: Array<[string, string]> | Buffer, typeflag = 'x'): Buffer {
  const data = Buffer.isBuffer(records) ? records : paxRecords(records);
  return Buffer.concat([header({ name: 'PaxHeader', typeflag, size: data.length }), body(data)]);
}

function file(name: string, content: string, fields: Fields = {}): Buffer {
  return Buffer.concat([header({ name, size: Buffer.byteLength(content), ...fields }), body(content)]);
}

const END = Buffer.alloc(2 * BLOCK);

interface Read {
  headers: TarHeader[];
  /** Per entry: [offset, bytes] pieces, joined where contiguous. */
  data: Array<Array<[number, string]>>;
  ended: boolean;
}

/** Reads an archive in chunks of `chunk` bytes (0: whole). */
function read(archive: Buffer, chunk = 0): Read {
  const out: Read = { headers: [], data: [], ended: false };
  let open = false;
  const reader = new TarReader({
    entry: (header) => {
      assert.equal(open, false, 'entry() before the previous entryEnd()');
      open = true;
      out.headers.push(header);
      out.data.push([]);
    },
    data: (bytes, offset) => {
      const pieces = out.data.at(-1)!;
      const last = pieces.at(-1);
      if (last && last[0] + last[1].length === offset) last[1] += bytes.toString('latin1');
      else pieces.push([offset, bytes.toString('latin1')]);
    },
    entryEnd: () => {
      assert.equal(open, true, 'entryEnd() without entry()');
      open = false;
    },
  });
  const step = chunk || archive.length || 1;
  for (let at = 0; at < archive.length; at += step) reader.push(archive.subarray(at, at + step));
  reader.end();
  out.ended = reader.ended;
  return out;
}

function refused(archive: Buffer, message: RegExp, chunk = 0): void {
  assert.throws(() => read(archive, chunk), (e: unknown) => e instanceof TarFormatError && message.test(e.message), String(message));
}

describe('TarReader: blocks and chunks', () => {
  const archive = Buffer.concat([file('a.txt', 'hello'), file('b.bin', 'x'.repeat(1500)), header({ name: 'd/', typeflag: '5' }), END]);

  it('gives the same entries and data whatever the chunk size', () => {
    const whole = read(archive);
    assert.deepEqual(whole.headers.map((h) => [h.path, h.type, h.size]), [['a.txt', 'file', 5], ['b.bin', 'file', 1500], ['d/', 'directory', 0]]);
    assert.deepEqual(whole.data, [[[0, 'hello']], [[0, 'x'.repeat(1500)]], []]);
    assert.equal(whole.ended, true);
    for (const chunk of [1, 7, 511, 512, 513, 1000, 1024, 1025]) assert.deepEqual(read(archive, chunk), whole, `chunks of ${chunk}`);
  });

  it('ignores whatever follows the two zero blocks', () => {
    assert.deepEqual(read(Buffer.concat([archive, Buffer.from('trailing garbage')])).headers.length, 3);
  });

  it('accepts an archive that ends at an entry boundary without zero blocks, as Go does', () => {
    const result = read(Buffer.concat([file('a.txt', 'hello'), header({ name: 'd/', typeflag: '5' })]), 100);
    assert.equal(result.headers.length, 2);
    assert.equal(result.ended, false);
  });

  it('refuses an archive cut inside an entry, saying at which byte', () => {
    const whole = Buffer.concat([file('a.txt', 'x'.repeat(700)), END]);
    refused(whole.subarray(0, 300), /ends in the middle of a tar entry \(at byte 300\)/); // inside the header
    refused(whole.subarray(0, 600), /ends in the middle of a tar entry \(at byte 600\)/); // inside the data
    refused(whole.subarray(0, 1200), /ends in the middle of a tar entry \(at byte 1200\)/); // inside the padding
    refused(whole.subarray(0, 1300), /ends in the middle of a tar entry \(at byte 1300\)/, 50); // after its end, a partial block
    refused(Buffer.concat([pax([['path', 'x']]), END.subarray(0, 0)]), /ends in the middle of a tar entry/); // a PAX header with no entry
    refused(Buffer.concat([Buffer.concat([header({ name: 'L', typeflag: 'L', size: 3 }), body('abc')])]), /ends in the middle/);
  });

  it('refuses a header after a zero block', () => {
    refused(Buffer.concat([file('a', 'x'), Buffer.alloc(BLOCK), file('b', 'y'), END]), /invalid tar header after a zero block at byte 1536/);
  });

  it('checks the header checksum, signed or unsigned', () => {
    refused(Buffer.concat([header({ name: 'a', checksumError: 1 }), END]), /invalid tar header at byte 0 \(checksum mismatch\)/);
    refused(Buffer.concat([file('a', 'x'), header({ name: 'b', checksumError: -1 }), END]), /at byte 1024 \(checksum mismatch\)/);
    const high = header({ name: 'caf\xe9\xff', signedChecksum: true });
    // DEL (127) is the last byte counted positive in a signed sum.
    assert.equal(read(Buffer.concat([header({ name: 'del\x7f\xe9', signedChecksum: true }), END])).headers[0]!.path, 'del\x7f\xe9');
    assert.equal(read(Buffer.concat([high, END])).headers[0]!.path, 'caf\xe9\xff');
    assert.equal(read(Buffer.concat([header({ name: 'caf\xe9\xff' }), END])).headers[0]!.path, 'caf\xe9\xff');
  });
});

describe('TarReader: header fields', () => {
  const one = (fields: Fields): TarHeader => read(Buffer.concat([header(fields), END])).headers[0]!;

  it('reads octal with spaces and NULs around it, and base-256', () => {
    assert.equal(one({ raw: [[100, ' 0755 \0\0']] }).mode, 0o755);
    assert.equal(one({ raw: [[100, '\0\0\0\0\0\0\0\0']] }).mode, 0);
    assert.equal(one({ raw: [[100, '   644 \0']] }).mode, 0o644, 'right-justified, as old tars write');
    assert.equal(one({ raw: [[100, '\0\0 644\0\0']] }).mode, 0o644);
    assert.equal(one({ raw: [[100, '0104755\0']] }).mode, 0o4755, 'setuid kept');
    assert.equal(one({ raw: [[100, '0170755\0']] }).mode, 0o755, 'file type bits dropped');
    const base256 = Buffer.alloc(12);
    base256[0] = 0x80;
    base256.writeUIntBE(2 ** 40 + 5, 6, 6);
    assert.deepEqual(one({ raw: [[136, base256]] }).mtime, { sec: 2 ** 40 + 5, nsec: 0 });
    const uid = Buffer.from([0x80, 0, 0, 0, 0x01, 0x00, 0x00, 0x05]); // past what 7 octal digits hold
    assert.equal(one({ raw: [[108, uid]] }).uid, 0x01000005);
  });

  it('refuses malformed numbers, naming the field and the byte', () => {
    refused(Buffer.concat([header({ raw: [[124, '0000000009\0\0']] }), END]), /invalid size "0000000009" in the tar header at byte 0/);
    refused(Buffer.concat([header({ raw: [[100, '07x5\0\0\0\0']] }), END]), /invalid mode "07x5" in the tar header at byte 0/);
    refused(Buffer.concat([header({ raw: [[100, '07 55\0\0\0']] }), END]), /invalid mode "07 55" in the tar header at byte 0/); // spaces only around the digits, as Go reads it
    refused(Buffer.concat([file('a', 'x'), header({ raw: [[108, '1-2\0\0\0\0\0']] }), END]), /invalid uid "1-2" in the tar header at byte 1024/);
    refused(Buffer.concat([header({ raw: [[116, 'g\0\0\0\0\0\0\0']] }), END]), /invalid gid "g" in the tar header at byte 0/);
    refused(Buffer.concat([header({ typeflag: '3', raw: [[329, '9\0']] }), END]), /invalid devmajor "9" in the tar header at byte 0/);
    refused(Buffer.concat([header({ typeflag: '4', raw: [[337, '9\0']] }), END]), /invalid devminor "9" in the tar header at byte 0/);
    // Right-justified with leading spaces, as some old tars write it.
    const justified = header({ name: 'old' });
    const sum = justified.toString('latin1', 148, 156).replace(/[\0 ]+$/, '');
    justified.write(`${sum.replace(/^0+/, '')}\0`.padStart(8, ' '), 148, 'latin1');
    assert.match(justified.toString('latin1', 148, 150), /^ +$/);
    assert.equal(read(Buffer.concat([justified, END])).headers[0]!.path, 'old');
    const badChecksum = header({});
    badChecksum.write('z', 148, 'latin1');
    refused(Buffer.concat([badChecksum, END]), /^invalid tar header at byte 0 \(checksum mismatch\): the layer is not a tar archive or is corrupt$/);
    // The right sum, but not bare octal digits between spaces and NULs: Go's reader (strconv.ParseUint) refuses each.
    const digits = header({ name: 'sum' }).toString('latin1', 148, 156).replace(/^[\0 ]+|[\0 ]+$/g, '');
    for (const field of [`${digits.slice(0, 2)} ${digits.slice(2)}`, `+${digits}`, `${digits}x`]) {
      const block = header({ name: 'sum' });
      block.write(field.padEnd(8, '\0'), 148, 'latin1');
      refused(Buffer.concat([block, END]), /^invalid tar header at byte 0 \(checksum mismatch\)/);
    }
    // What a layer that is not a tar gives the reader: text where the checksum goes.
    const page = Buffer.from('<!DOCTYPE html>\n<html><body>' + 'Service Unavailable. '.repeat(60) + '</body></html>\n');
    refused(page, /^invalid tar header at byte 0 \(checksum mismatch\): the layer is not a tar archive or is corrupt$/);
    const negative = Buffer.alloc(12, 0xff);
    refused(Buffer.concat([header({ raw: [[136, negative]] }), END]), /negative mtime in the tar header at byte 0/);
    const huge = Buffer.alloc(12, 0x7f);
    huge[0] = 0x81; // base-256, positive, far past 2^53
    refused(Buffer.concat([header({ raw: [[136, huge]] }), END]), /the mtime in the tar header at byte 0 is too large/);
  });

  it('joins the ustar prefix and the name, only in ustar headers', () => {
    assert.equal(one({ name: 'name', prefix: 'some/prefix' }).path, 'some/prefix/name');
    assert.equal(one({ name: 'name', prefix: 'some/prefix', magic: 'xxxxx\0' }).path, 'name');
    assert.equal(one({ name: 'n'.repeat(100) }).path, 'n'.repeat(100), 'a name filling its field has no NUL');
    assert.equal(one({ name: 'link', typeflag: '2', linkpath: 't'.repeat(100) }).linkpath, 't'.repeat(100));
  });

  it('maps type flags, pre-POSIX directories included, and names the ones it cannot extract', () => {
    assert.equal(one({ name: 'old', typeflag: '\0' }).type, 'file');
    assert.equal(one({ name: 'old-dir/', typeflag: '\0' }).type, 'directory');
    assert.equal(one({ name: 'contiguous', typeflag: '7' }).type, 'file');
    assert.equal(one({ name: 'dumpdir', typeflag: 'D' }).type, 'directory');
    assert.equal(one({ name: 'hl', typeflag: '1', linkpath: 'a' }).type, 'hardlink');
    assert.equal(one({ name: 'f', typeflag: '6' }).type, 'fifo');
    for (const [flag, what] of [['V', 'GNU volume label'], ['M', 'GNU multi-volume continuation'], ['N', 'old GNU long name'], ['Q', 'unknown type']]) {
      refused(Buffer.concat([header({ name: 'odd', typeflag: flag }), END]), new RegExp(`^"odd": unsupported tar entry type "${flag}" \\(${what}\\); it cannot be extracted$`));
    }
  });

  it('reads device numbers of devices only, and gives non-files no size', () => {
    const char = one({ name: 'c', typeflag: '3', devmajor: 1, devminor: 3 });
    assert.deepEqual([char.type, char.devmajor, char.devminor], ['char', 1, 3]);
    const block = one({ name: 'b', typeflag: '4', devmajor: 8, devminor: 1 });
    assert.deepEqual([block.type, block.devmajor, block.devminor], ['block', 8, 1]);
    const fifo = one({ name: 'f', typeflag: '6', devmajor: 5, devminor: 6 });
    assert.deepEqual([fifo.devmajor, fifo.devminor], [0, 0]);
    // A hardlink header with a size field: no data follows it in practice, and its size is 0.
    const archive = Buffer.concat([header({ name: 'hl', typeflag: '1', linkpath: 'a', size: 0 }), file('next', 'n'), END]);
    assert.deepEqual(read(archive).headers.map((h) => [h.path, h.size]), [['hl', 0], ['next', 1]]);
  });
});

describe('TarReader: PAX and GNU extensions', () => {
  const entry = (...parts: Buffer[]): { header: TarHeader; data: Array<[number, string]> } => {
    const result = read(Buffer.concat([...parts, END]));
    return { header: result.headers.at(-1)!, data: result.data.at(-1)! };
  };

  it('applies PAX records to the next entry only', () => {
    const result = read(Buffer.concat([
      pax([['path', 'long/' + 'p'.repeat(200)], ['linkpath', 'target'], ['uid', '70000'], ['gid', '80000'], ['mtime', '1700000000.5'], ['size', '3']]),
      header({ name: 'short', typeflag: '0', size: 999 }), // the PAX size wins
      body('abc'),
      file('plain', 'x'),
      END,
    ]));
    const [first, second] = result.headers;
    assert.deepEqual([first!.path, first!.linkpath, first!.uid, first!.gid, first!.mtime, first!.size], ['long/' + 'p'.repeat(200), 'target', 70000, 80000, { sec: 1_700_000_000, nsec: 500_000_000 }, 3]);
    assert.deepEqual(result.data[0], [[0, 'abc']]);
    assert.deepEqual([second!.path, second!.uid, second!.size], ['plain', 0, 1]);
  });

  it('reads PAX times to the nanosecond, before 1970 too', () => {
    const mtime = (value: string) => entry(pax([['mtime', value]]), header({ name: 'f' })).header.mtime;
    assert.deepEqual(mtime('1700000000.123456789999'), { sec: 1_700_000_000, nsec: 123_456_789 });
    assert.deepEqual(mtime('1700000000.12'), { sec: 1_700_000_000, nsec: 120_000_000 });
    assert.deepEqual(mtime('1700000000.'), { sec: 1_700_000_000, nsec: 0 });
    assert.deepEqual(mtime('42'), { sec: 42, nsec: 0 });
    assert.deepEqual(mtime('-1.5'), { sec: -2, nsec: 500_000_000 });
    assert.deepEqual(mtime('-3'), { sec: -3, nsec: 0 });
    refused(Buffer.concat([pax([['mtime', '1.2.3']]), header({}), END]), /invalid PAX mtime "1\.2\.3"/);
    refused(Buffer.concat([pax([['mtime', '9'.repeat(30)]]), header({}), END]), /invalid PAX mtime/);
    refused(Buffer.concat([pax([['uid', '-1']]), header({}), END]), /invalid PAX uid "-1"/);
    // Decimal digits only, as Go's archive/tar reads them (JS's Number() would take these).
    refused(Buffer.concat([pax([['gid', '12 ']]), header({}), END]), /invalid PAX gid "12 "/);
    refused(Buffer.concat([pax([['size', '1e3']]), header({}), END]), /invalid PAX size "1e3"/);
    refused(Buffer.concat([pax([['size', 'x']]), header({ name: 'dir/', typeflag: '5' }), END]), /invalid PAX size "x"/);
    refused(Buffer.concat([pax([['GNU.sparse.realsize', '0x10'], ['GNU.sparse.map', '0,1']]), header({ size: 1 }), body('a'), END]), /invalid PAX GNU\.sparse\.realsize "0x10"/);
  });

  it('lets an empty value remove a record, ignores global headers, and keeps xattrs in order', () => {
    assert.equal(entry(pax([['path', 'from-pax'], ['path', '']]), header({ name: 'from-header' })).header.path, 'from-header');
    assert.equal(entry(pax([['path', 'global']], 'g'), header({ name: 'own' })).header.path, 'own');
    const { header: withXattrs } = entry(
      pax([['SCHILY.xattr.user.b', 'two'], ['LIBARCHIVE.xattr.user.%61', Buffer.from('one').toString('base64')], ['SCHILY.xattr.user.caf\xc3\xa9', 'x']]),
      header({ name: 'x' }),
    );
    assert.deepEqual(withXattrs.xattrs.map(([name, value]) => [name, value.toString()]), [['user.b', 'two'], ['user.a', 'one'], ['user.café', 'x']]);
  });

  it('tolerates NUL padding after the records, and refuses malformed records', () => {
    const padded = Buffer.concat([paxRecords([['path', 'padded']]), Buffer.alloc(20)]);
    assert.equal(entry(pax(padded), header({})).header.path, 'padded');
    // '0x9 a=bc\n' and '1e1 a=bcd\n' are 9 and 10 bytes long: a length is decimal digits, as Go and Python read it.
    for (const bad of ['5 a=b\n', '99 path=x\n', 'x path=x\n', '10 path=x!', ' 9 path=x\n', '0x9 a=bc\n', '1e1 a=bcd\n']) {
      refused(Buffer.concat([pax(Buffer.from(bad)), header({}), END]), /^invalid PAX extended header record$/);
    }
    // Garbage before NUL padding is still garbage.
    refused(Buffer.concat([pax(Buffer.from('garbage\0\0\0')), header({}), END]), /^invalid PAX extended header record$/);
    // A record of length 0 after a good one (its "last byte" would be the previous newline).
    refused(Buffer.concat([pax(Buffer.concat([paxRecords([['path', 'a']]), Buffer.from('0 path=b\n')])), header({}), END]), /^invalid PAX extended header record$/);
    refused(Buffer.concat([pax(Buffer.from('7 =abc\n')), header({}), END]), /no key/);
    refused(Buffer.concat([pax(Buffer.from('7 path\n')), header({}), END]), /no key/);
  });

  it('reads a PAX header of exactly 8 MiB, and refuses a PAX or long-name header larger than that before buffering it', () => {
    const limit = 8 * 1024 * 1024;
    const path = paxRecords([['path', 'big']]);
    const exact = Buffer.concat([paxRecords([['comment', 'c'.repeat(limit - path.length - 17)]]), path]); // "8388602 comment=...\n"
    assert.equal(exact.length, limit);
    assert.equal(entry(pax(exact), header({})).header.path, 'big');
    refused(Buffer.concat([header({ name: 'PaxHeader', typeflag: 'x', size: 8 * 1024 * 1024 + 1 }), END]), /a tar x header of 8388609 bytes at byte 0 is larger than the 8388608-byte limit/);
  });

  it('reads GNU long names and long link targets, and empty ones', () => {
    const longName = 'dir/' + 'n'.repeat(300);
    const longLink = 'target/' + 't'.repeat(300);
    const { header: h } = entry(
      header({ name: '././@LongLink', typeflag: 'L', size: longName.length + 1 }),
      body(longName + '\0'),
      header({ name: '././@LongLink', typeflag: 'K', size: longLink.length }),
      body(longLink),
      header({ name: 'short', typeflag: '2', linkpath: 'short-target' }),
    );
    assert.deepEqual([h.path, h.linkpath], [longName, longLink]);
    assert.equal(entry(header({ name: 'x', typeflag: 'L', size: 0 }), header({ name: 'kept' })).header.path, '', 'an empty long name');
  });

  it('reads PAX sparse 0.0 and 0.1 maps', () => {
    const v00 = entry(
      pax([['GNU.sparse.size', '10000'], ['GNU.sparse.numblocks', '2'], ['GNU.sparse.offset', '0'], ['GNU.sparse.numbytes', '3'], ['GNU.sparse.offset', '9000'], ['GNU.sparse.numbytes', '2'], ['GNU.sparse.name', 'real-name']]),
      header({ name: 'GNUSparseFile.0/x', size: 5 }),
      body('abcde'),
    );
    assert.deepEqual([v00.header.path, v00.header.size, v00.header.sparse], ['real-name', 10000, [[0, 3], [9000, 2]]]);
    assert.deepEqual(v00.data, [[0, 'abc'], [9000, 'de']]);
    const v01 = entry(pax([['GNU.sparse.realsize', '4096'], ['GNU.sparse.map', '10,2,4000,1']]), header({ name: 'y', size: 3 }), body('xyz'));
    assert.deepEqual([v01.header.size, v01.header.sparse, v01.data], [4096, [[10, 2], [4000, 1]], [[10, 'xy'], [4000, 'z']]]);
    refused(Buffer.concat([pax([['GNU.sparse.numbytes', '3']]), header({ size: 3 }), body('abc'), END]), /GNU\.sparse\.numbytes without an offset/);
    // Only a file has holes: Go's archive/tar refuses a sparse map on any other type too.
    refused(Buffer.concat([pax([['GNU.sparse.map', '0,1']]), header({ name: 'link', typeflag: '2', linkpath: 't' }), END]), /^"link": a symlink cannot be sparse$/);
    refused(Buffer.concat([pax([['GNU.sparse.map', '1,2,3']]), header({ size: 2 }), body('ab'), END]), /invalid GNU\.sparse\.map/);
    refused(Buffer.concat([pax([['GNU.sparse.size', '10'], ['GNU.sparse.map', '8,5']]), header({ name: 'past', size: 5 }), body('abcde'), END]), /"past": a sparse segment lies past the file's size/);
    refused(Buffer.concat([pax([['GNU.sparse.size', '100'], ['GNU.sparse.map', '0,4']]), header({ name: 'short', size: 5 }), body('abcde'), END]), /"short": its sparse map describes 4 bytes of data, the archive holds 5/);
  });

  it('reads a PAX sparse 1.0 map, over several blocks', () => {
    const segments = Array.from({ length: 150 }, (_, i): [number, number] => [i * 100_000, 1]);
    const map = [String(segments.length), ...segments.flatMap(([offset, length]) => [String(offset), String(length)])].join('\n') + '\n';
    const mapBlocks = body(map);
    assert.ok(mapBlocks.length > BLOCK, 'the map spans blocks');
    const data = 'd'.repeat(segments.length);
    const { header: h, data: pieces } = entry(
      pax([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.name', 'sparse-1.0'], ['GNU.sparse.realsize', '15000000']]),
      header({ name: 'GNUSparseFile.0/x', size: mapBlocks.length + data.length }),
      body(Buffer.concat([mapBlocks, Buffer.from(data)])),
    );
    assert.deepEqual([h.path, h.size, h.sparse], ['sparse-1.0', 15_000_000, segments]);
    assert.deepEqual(pieces, segments.map(([offset]) => [offset, 'd']));
    const oneBlock = entry(
      pax([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.realsize', '10']]),
      header({ name: 'one', size: BLOCK + 2 }),
      body(Buffer.concat([body('1\n8\n2\n'), Buffer.from('zz')])),
    );
    assert.deepEqual(oneBlock.data, [[8, 'zz']]);
    refused(Buffer.concat([pax([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0']]), header({ name: 'bad', size: BLOCK }), body('x\n'), END]), /"bad": invalid PAX sparse map/);
    refused(Buffer.concat([pax([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0']]), header({ name: 'neg', size: BLOCK }), body('-1\n'), END]), /"neg": invalid PAX sparse map/);
    refused(Buffer.concat([pax([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.realsize', '10']]), header({ name: 'small', size: 10 }), body('1\n0\n2\n'), END]), /"small": its sparse map is larger than its data/);
  });

  it('reads old GNU sparse headers, with extension blocks', () => {
    // Typeflag S: up to 4 segments in the header (offset 386), the real size at 483, more in extension blocks.
    const segment = (offset: number, length: number): string => octal(offset, 12) + octal(length, 12);
    const raw: Array<[number, string]> = [[483, octal(100_000, 12)]];
    for (let i = 0; i < 4; i++) raw.push([386 + i * 24, segment(i * 10_000, 2)]);
    raw.push([482, '\x01']); // extension blocks follow
    const extension = Buffer.alloc(BLOCK);
    for (let i = 0; i < 21; i++) extension.write(segment(40_000 + i * 1000, 1), i * 24, 'latin1');
    extension[504] = 1; // and another
    const last = Buffer.alloc(BLOCK);
    last.write(segment(90_000, 3), 0, 'latin1');
    const dataLength = 4 * 2 + 21 + 3;
    const { header: h, data } = entry(header({ name: 'old-sparse', typeflag: 'S', size: dataLength, raw }), extension, last, body('s'.repeat(dataLength)));
    assert.equal(h.size, 100_000);
    assert.equal(h.sparse!.length, 4 + 21 + 1);
    assert.deepEqual(h.sparse!.slice(0, 5), [[0, 2], [10_000, 2], [20_000, 2], [30_000, 2], [40_000, 1]]);
    assert.deepEqual(h.sparse!.at(-1), [90_000, 3]);
    assert.deepEqual(data.at(-1), [90_000, 'sss']);
    assert.equal(data.reduce((sum, [, bytes]) => sum + bytes.length, 0), dataLength);
    // Fewer than 4 segments: the list ends at the first empty slot.
    const short = entry(header({ name: 'short', typeflag: 'S', size: 1, raw: [[483, octal(50, 12)], [386, segment(49, 1)]] }), body('!'));
    assert.deepEqual([short.header.sparse, short.data], [[[49, 1]], [[49, '!']]]);
    refused(Buffer.concat([header({ name: 'bad', typeflag: 'S', raw: [[483, '12x\0'], [386, segment(0, 0)]] }), END]), /invalid real size "12x" in the tar header at byte 0/);
    // A bad segment names its field and the byte of its block: the header's, or the extension block's.
    refused(Buffer.concat([file('a', 'x'), header({ name: 'bad', typeflag: 'S', raw: [[483, octal(10, 12)], [386, '8x\0']] }), END]), /invalid sparse offset "8x" in the tar header at byte 1024/);
    const badExtension = Buffer.alloc(BLOCK);
    badExtension.write(octal(0, 12) + '1y\0', 0, 'latin1');
    refused(Buffer.concat([header({ name: 'bad', typeflag: 'S', size: 1, raw: [[483, octal(10, 12)], [386, segment(0, 1)], [482, '\x01']] }), badExtension, END]), /invalid sparse length "1y" in the tar header at byte 512/);
  });
});

describe('TarReader: names in messages', () => {
  it('shows a name as UTF-8 when it is, else printable ASCII with every other byte as \\xNN', () => {
    assert.equal(display('caf\xc3\xa9 "q"'), '"café \\"q\\""', 'valid UTF-8: JSON-quoted');
    assert.equal(display('caf\xe9 ~"\\\x01\x1f\x7f\x80'), '"caf\\xe9 ~\\x22\\x5c\\x01\\x1f\\x7f\\x80"');
    assert.equal(display(''), '""');
    refused(Buffer.concat([header({ name: 'caf\xe9\n', typeflag: 'V' }), END]), /^"caf\\xe9\\x0a": unsupported tar entry type "V" \(GNU volume label\)/);
  });
});

describe('TarReader: the sparse segment limit (1,000,000)', () => {
  it('reads a PAX sparse 0.1 map of exactly a million segments, and refuses one more', () => {
    const map = (count: number) => pax([['GNU.sparse.realsize', '0'], ['GNU.sparse.map', Array(count).fill('0,0').join(',')]]);
    assert.equal(read(Buffer.concat([map(1_000_000), header({ name: 'full' }), END])).headers[0]!.sparse!.length, 1_000_000);
    refused(Buffer.concat([map(1_000_001), header({ name: 'over' }), END]), /invalid GNU\.sparse\.map/);
  });

  it('reads old GNU sparse extension blocks up to a million segments, and refuses one more', () => {
    const segment = octal(0, 12) + octal(0, 12);
    const oldSparse = (count: number): Buffer => {
      const blocks = [header({ name: 'many', typeflag: 'S', raw: [[386, segment.repeat(4)], [482, '\x01']] })];
      for (let left = count - 4; left > 0; left -= 21) {
        const extension = Buffer.alloc(BLOCK);
        extension.write(segment.repeat(Math.min(21, left)), 0, 'latin1');
        if (left > 21) extension[504] = 1;
        blocks.push(extension);
      }
      return Buffer.concat([...blocks, END]);
    };
    assert.equal(read(oldSparse(1_000_000)).headers[0]!.sparse!.length, 1_000_000);
    refused(oldSparse(1_000_001), /^"many": more than 1000000 sparse segments$/);
  });
});

describe('TarReader: PAX sparse 1.0 maps from a hostile layer', () => {
  const sparse10 = (name: string, size: number, ...data: Buffer[]): Buffer =>
    Buffer.concat([pax([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.realsize', '1000']]), header({ name, size }), ...data]);

  it('reads a map of no segment (a file all hole), and one whose last number is split between blocks', () => {
    const empty = read(Buffer.concat([sparse10('hole', BLOCK, body('0\n')), END]));
    assert.deepEqual([empty.headers[0]!.size, empty.headers[0]!.sparse, empty.data[0]], [1000, [], []]);
    // One segment, its offset 9 (with leading zeros up to the block's end), its length 10 split: the 1 alone is not the length.
    const firstBlock = Buffer.concat([Buffer.from('1\n'), Buffer.alloc(BLOCK - 5, 0x30), Buffer.from('9\n1')]);
    assert.equal(firstBlock.length, BLOCK);
    const split = read(Buffer.concat([sparse10('split', 2 * BLOCK + 10, firstBlock, body('0\n'), body('0123456789')), END]));
    assert.deepEqual([split.headers[0]!.sparse, split.data[0]], [[[9, 10]], [[9, '0123456789']]]);
  });

  it('refuses a map that is not lines of decimal numbers, or with more than a million segments, at its first block', () => {
    // Digits after each (a number going on in the next block) and a block of them: only the bad line tells.
    for (const bad of ['x'.repeat(BLOCK), '\n', '1\n+5\n1\n', '1\n0x10\n1\n', '1000001\n']) {
      const first = Buffer.from(bad.padEnd(BLOCK, '0'), 'latin1');
      refused(Buffer.concat([sparse10('bad', 2 * BLOCK, first, Buffer.alloc(BLOCK, 0x30)), END]), /^"bad": invalid PAX sparse map$/);
    }
  });

  it('refuses a map that runs past its entry\'s data, without reading the next entries as map', () => {
    refused(Buffer.concat([sparse10('short', BLOCK, body('2\n1\n1\n')), file('next', 'n'), END]), /^"short": its sparse map is larger than its data$/);
  });

  it('reads a map of up to 8 MiB, and refuses a longer one', () => {
    // Segments of "0000000\n0000000\n": the first map ends in its 16,384th block, the second in the next one.
    const map = (count: number) => Buffer.from(`${count}\n` + '0000000\n0000000\n'.repeat(count));
    const underLimit = body(map(524_281));
    assert.equal(underLimit.length, 8 * 1024 * 1024);
    assert.equal(read(Buffer.concat([sparse10('under', underLimit.length, underLimit), END])).headers[0]!.sparse!.length, 524_281);
    const overLimit = body(map(524_294));
    assert.equal(overLimit.length, 8 * 1024 * 1024 + BLOCK);
    refused(Buffer.concat([sparse10('over', overLimit.length, overLimit), END]), /^"over": the PAX sparse map is too large$/);
  });

  for (const [what, map] of [
    // 1,000,000 segments announced, "0000000\n" lines for 8 MiB and a block: not complete by then.
    ['short lines', Buffer.from('1000000\n' + '0000000\n'.repeat(1024 * 1024 + BLOCK)).subarray(0, 8 * 1024 * 1024 + BLOCK)],
    // One segment announced, then one number whose digits go on for 8 MiB and a block.
    ['one endless line', Buffer.from('1\n' + '0'.repeat(8 * 1024 * 1024 + BLOCK - 2))],
  ] as const) {
    it(`refuses a map over 8 MiB, reading it in linear time (not re-reading it at each block): ${what}`, async () => {
      const archive = Buffer.concat([sparse10('huge', map.length + BLOCK, map, body('x')), END]);
      // In a worker: a parser that re-reads the whole map (or the whole unfinished line) at every
      // block takes minutes to some 40 minutes of CPU on these, and would hold the test's own
      // thread (a test timeout cannot stop it).
      const worker = new Worker(
        `const { parentPort, workerData } = require('node:worker_threads');
        import(workerData.module).then(({ TarReader }) => {
          const reader = new TarReader({ entry() {}, data() {}, entryEnd() {} });
          try { reader.push(Buffer.from(workerData.archive)); reader.end(); parentPort.postMessage('accepted'); }
          catch (error) { parentPort.postMessage(error.message); }
        });`,
        { eval: true, workerData: { module: new URL('../../src/extract/tar-reader.js', import.meta.url).href, archive } },
      );
      let timer: NodeJS.Timeout | undefined;
      try {
        const outcome = await Promise.race([
          once(worker, 'message').then(([message]) => message as string),
          new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still parsing after 60 s'), 60_000))),
        ]);
        assert.equal(outcome, '"huge": the PAX sparse map is too large');
      } finally {
        clearTimeout(timer);
        await worker.terminate();
      }
    });
  }
});
