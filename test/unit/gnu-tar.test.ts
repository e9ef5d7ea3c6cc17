/**
 * The tar reader against an independent implementation: GNU tar writes a
 * tree in each of its formats (GNU with old sparse headers, PAX with sparse
 * 0.0, 0.1 and 1.0, xattrs, long and non-UTF-8 names), GNU tar extracts the
 * reference, and RootfsWriter's extraction must equal it entry by entry.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, lstatSync, mkdirSync, openSync, symlinkSync, linkSync, writeFileSync, writeSync, utimesSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { RootfsWriter } from '../../src/index.js';
import { TarFormatError, TarReader, type TarHeader } from '../../src/extract/tar-reader.js';
import { native } from '../../src/native.js';
import { tempDir } from '../support/env.js';
import { assertSameTree, compareTrees, snapshot } from '../support/tree.js';

const MiB = 1024 * 1024;

/** A tree exercising what tar formats differ on. Names are bytes. */
function makeSource(dir: string): void {
  const path = (rel: string) => Buffer.from(`${dir}/${rel}`, 'latin1');
  mkdirSync(dir);
  // A sparse file: data at the start, in the middle and a last byte, holes between.
  const fd = openSync(path('sparse.img'), 'w');
  writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 0);
  writeSync(fd, Buffer.alloc(8192, 2), 0, 8192, 5 * MiB);
  writeSync(fd, Buffer.from('!'), 0, 1, 16 * MiB - 1);
  closeSync(fd);
  // A sparse file that ends in a hole.
  const tail = openSync(path('hole-at-end.img'), 'w');
  writeSync(tail, Buffer.from('head'), 0, 4, 0);
  closeSync(tail);
  execFileSync('truncate', ['-s', '3M', `${dir}/hole-at-end.img`]);
  mkdirSync(path('names'));
  for (const name of ['caf\xe9', 'x\xff', 'x\xfe', '\xff\xfe', 'line\nbreak', '-dash leading space', 'n'.repeat(200)]) writeFileSync(path(`names/${name}`), name);
  mkdirSync(path(`deep/${'d'.repeat(150)}/${'e'.repeat(150)}`), { recursive: true });
  writeFileSync(path(`deep/${'d'.repeat(150)}/${'e'.repeat(150)}/file`), 'deep');
  symlinkSync(Buffer.from('caf\xe9', 'latin1'), path('names/link-to-caf\xe9'));
  symlinkSync('t'.repeat(180), path('long-symlink'));
  writeFileSync(path('hard-a'), 'shared');
  linkSync(path('hard-a'), path(`hard-${'b'.repeat(120)}`));
  writeFileSync(path('setuid'), 'x');
  chmodSync(path('setuid'), 0o4755);
  mkdirSync(path('sticky'));
  chmodSync(path('sticky'), 0o1777);
  execFileSync('mkfifo', ['-m', '0640', `${dir}/fifo`]);
  writeFileSync(path('xattr-file'), 'x');
  native.setXattr(path('xattr-file'), 'user.fixture', Buffer.from('some value'));
  native.setXattr(path('xattr-file'), 'user.binary', Buffer.from([0, 1, 0xff]));
  native.setXattr(path('sticky'), 'user.on-dir', Buffer.from('dir'));
  native.utimes(path('setuid'), 1_500_000_000, 123_456_789);
  utimesSync(path('names'), 1_400_000_000, 1_400_000_000);
}

/** The type flags of the archive's headers (walking the blocks by each header's size). */
function typeflagsOf(archive: Buffer): string[] {
  const flags: string[] = [];
  for (let at = 0; at + 512 <= archive.length && archive[at] !== 0; ) {
    flags.push(String.fromCharCode(archive[at + 156]!));
    const size = parseInt(archive.toString('latin1', at + 124, at + 136).replace(/\0.*$/, ''), 8) || 0;
    // Old GNU sparse headers may be followed by extension blocks (flag at 482): none here, 4 segments fit.
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return flags;
}

async function ours(archive: Buffer, root: string, chunks: Buffer[] = [archive]): Promise<void> {
  const writer = new RootfsWriter(root);
  await writer.applyLayer(Readable.from(chunks));
  await writer.finish();
}

/** The archive cut into chunks of 1 to 1,500 bytes (a fixed sequence): headers and PAX records split everywhere. */
function oddChunks(archive: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < archive.length; i++) {
    const size = 1 + ((i * 7919) % 1500);
    chunks.push(archive.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

const FORMATS: Array<[string, string[]]> = [
  ['GNU format, old GNU sparse headers', ['--format=gnu', '--sparse']],
  ['PAX, sparse 0.0', ['--format=posix', '--sparse', '--sparse-version=0.0', '--xattrs']],
  ['PAX, sparse 0.1', ['--format=posix', '--sparse', '--sparse-version=0.1', '--xattrs']],
  ['PAX, sparse 1.0', ['--format=posix', '--sparse', '--sparse-version=1.0', '--xattrs']],
];

describe('tar reader vs GNU tar', () => {
  for (const [what, flags] of FORMATS) {
    it(`extracts what GNU tar extracts: ${what}`, async () => {
      using dir = tempDir();
      const source = join(dir.path, 'source');
      makeSource(source);
      const archive = execFileSync('tar', ['-c', ...flags, '--numeric-owner', '-C', source, '.'], { maxBuffer: 256 * MiB });
      if (flags.includes('--format=gnu')) assert.ok(typeflagsOf(archive).includes('S'), 'GNU tar wrote an old-GNU sparse entry');
      else assert.ok(archive.includes('GNU.sparse.'), 'GNU tar wrote PAX sparse records');
      const reference = join(dir.path, 'reference');
      mkdirSync(reference);
      const xattrFlags = flags.includes('--xattrs') ? ['--xattrs', '--xattrs-include=*'] : [];
      execFileSync('tar', ['-x', ...xattrFlags, '-p', '--numeric-owner', '-C', reference], { input: archive });
      const mine = join(dir.path, 'mine');
      await ours(archive, mine);
      const expected = snapshot(reference);
      assertSameTree(snapshot(mine), expected, what);
      const chunked = join(dir.path, 'chunked');
      await ours(archive, chunked, oddChunks(archive));
      assertSameTree(snapshot(chunked), expected, `${what}, fed in chunks of 1 to 1,500 bytes`);
      assert.ok(expected.get('sparse.img')!.size === 16 * MiB);
      const blocks = lstatSync(join(mine, 'sparse.img')).blocks * 512;
      assert.ok(blocks < 1 * MiB, `holes kept: ${blocks} bytes allocated for a 16 MiB sparse file`);
    });
  }
});

describe('tree comparison (the conformance suite relies on it)', () => {
  it('reports each changed field, a missing entry, an extra entry and a split hardlink group', () => {
    using dir = tempDir();
    const a = join(dir.path, 'a');
    makeSource(a);
    const before = snapshot(a);
    chmodSync(Buffer.from(`${a}/names/caf\xe9`, 'latin1'), 0o600);
    native.utimes(Buffer.from(`${a}/setuid`), 1_500_000_000, 123_456_790);
    native.setXattr(Buffer.from(`${a}/xattr-file`), 'user.fixture', Buffer.from('other'));
    writeFileSync(`${a}/extra`, '');
    execFileSync('rm', [`${a}/fifo`]);
    execFileSync('cp', [`${a}/hard-a`, `${a}/hard-a.copy`]);
    execFileSync('mv', [`${a}/hard-a.copy`, `${a}/hard-a`]);
    // Adding and replacing entries also moved the root's and the new hard-a's mtimes: true, but not the point here.
    const differences = compareTrees(snapshot(a), before).filter((line) => !/^(\(root\)|hard-a): mtimeNs/.test(line));
    assert.deepEqual(differences.sort(), [
      'extra: extra file',
      'fifo: missing (expected a fifo)',
      `hard-${'b'.repeat(120)}: linkGroup none, expected hard-a`,
      'hard-a: linkGroup none, expected hard-a',
      'names/caf\\xe9: mode 384, expected 420',
      'setuid: mtimeNs 1500000000123456790, expected 1500000000123456789',
      'xattr-file: xattrs {"user.binary":"0001ff","user.fixture":"6f74686572"}, expected {"user.binary":"0001ff","user.fixture":"736f6d652076616c7565"}',
    ].sort());
  });
});

interface Entries {
  headers: TarHeader[];
  /** Per entry, its data as [offset, bytes] pieces. */
  data: Array<Array<[number, string]>>;
}

/** TarReader's events for an archive fed in chunks of `chunk` bytes (0: whole). */
function entries(archive: Buffer, chunk = 0): Entries {
  const out: Entries = { headers: [], data: [] };
  const reader = new TarReader({
    entry: (header) => (out.headers.push(header), out.data.push([])),
    data: (bytes, offset) => out.data.at(-1)!.push([offset, bytes.toString('latin1')]),
    entryEnd: () => undefined,
  });
  const step = chunk || archive.length;
  for (let at = 0; at < archive.length; at += step) reader.push(archive.subarray(at, at + step));
  reader.end();
  return out;
}

/** The data of each entry as [offset, bytes] runs, however it was split. */
function joined(result: Entries): Array<Array<[number, string]>> {
  return result.data.map((pieces) => {
    const runs: Array<[number, string]> = [];
    for (const [offset, bytes] of pieces) {
      const last = runs.at(-1);
      if (last && last[0] + last[1].length === offset) last[1] += bytes;
      else runs.push([offset, bytes]);
    }
    return runs;
  });
}

/** An archive Python's tarfile writes: `script` gets `tarfile`, `io` and `out` (a TarFile on stdout's bytes). */
function python(script: string): Buffer {
  const program = `import io, sys, tarfile\nbuf = io.BytesIO()\nout = tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT)\n${script}\nout.close()\nsys.stdout.buffer.write(buf.getvalue())\n`;
  return execFileSync('python3', ['-c', program], { maxBuffer: 64 * MiB });
}

describe('tar reader on odd archives from GNU tar and Python', () => {
  it('gives GNU dump directories (incremental archives) no data and no size', () => {
    using dir = tempDir();
    mkdirSync(join(dir.path, 'src/sub'), { recursive: true });
    writeFileSync(join(dir.path, 'src/sub/a'), 'hi');
    writeFileSync(join(dir.path, 'src/b'), 'yo');
    const archive = execFileSync('tar', ['-c', '--format=gnu', '-g', join(dir.path, 'snapshot'), '-C', join(dir.path, 'src'), '.']);
    assert.deepEqual(typeflagsOf(archive), ['D', 'D', '0', '0'], 'GNU tar wrote dump directories');
    const result = entries(archive);
    assert.deepEqual(result.headers.map((h) => [h.path, h.type, h.size]), [['./', 'directory', 0], ['./sub/', 'directory', 0], ['./b', 'file', 2], ['./sub/a', 'file', 2]]);
    assert.deepEqual(joined(result), [[], [], [[0, 'yo']], [[0, 'hi']]], 'the listing in a dump directory is not file data');
  });

  it('names a non-UTF-8 entry it cannot extract byte by byte (a GNU volume label)', () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, 'f'), 'x');
    // The label is written as the name of a V header; printf gives tar the raw bytes.
    const archive = execFileSync('sh', ['-c', `tar -c --format=gnu -V "$(printf 'caf\\351\\001')" -C "$1" f`, 'sh', dir.path]);
    assert.equal(typeflagsOf(archive)[0], 'V');
    assert.throws(() => entries(archive), (e: unknown) => e instanceof TarFormatError && e.message === '"caf\\xe9\\x01": unsupported tar entry type "V" (GNU volume label); it cannot be extracted');
  });

  it('reads old GNU sparse extension blocks the same whatever the chunking', () => {
    using dir = tempDir();
    // 30 data runs: 4 fit in the header, the rest go to extension blocks.
    const fd = openSync(join(dir.path, 'many-holes'), 'w');
    for (let i = 0; i < 30; i++) writeSync(fd, Buffer.alloc(4096, 65 + (i % 26)), 0, 4096, i * 64 * 1024);
    closeSync(fd);
    const archive = execFileSync('tar', ['-c', '--format=gnu', '--sparse', '-C', dir.path, 'many-holes']);
    assert.equal(archive[482], 1, 'GNU tar wrote extension blocks');
    const whole = entries(archive);
    assert.equal(whole.headers[0]!.sparse!.length, 31, 'GNU tar ends the map with an empty run at the file size');
    assert.deepEqual(joined(whole)[0]!.slice(0, 2), [[0, 'A'.repeat(4096)], [64 * 1024, 'B'.repeat(4096)]]);
    // 1024: the extension block is exactly what is left of the first chunk; 700 and 1: less than a block is.
    for (const chunk of [1024, 700, 1]) assert.deepEqual(joined(entries(archive, chunk)), joined(whole), `chunks of ${chunk}`);
  });

  it('refuses an archive cut after a GNU long link target, before its entry', () => {
    using dir = tempDir();
    symlinkSync('t'.repeat(150), join(dir.path, 'link'));
    const archive = execFileSync('tar', ['-c', '--format=gnu', '-C', dir.path, 'link']);
    assert.deepEqual(typeflagsOf(archive), ['K', '2']);
    const cut = 512 + Math.ceil(151 / 512) * 512; // the K header and its data
    assert.throws(() => entries(archive.subarray(0, cut)), (e: unknown) => e instanceof TarFormatError && /ends in the middle of a tar entry \(at byte 1024\)/.test(e.message));
  });

  it('reads no data after a link, device, directory or fifo header whatever its size field says, as Go and Python do', () => {
    // Each header claims 512 bytes of data; the block after it is a header of its own. Go's
    // archive/tar (what containerd and podman extract layers with) and Python's tarfile read
    // that header; GNU tar skips it. A reader that skips it extracts a different tree.
    const script = `
def header_only(name, kind, **fields):
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items(): setattr(info, key, value)
    block = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    block[124:136] = b'%011o\\0' % 512
    block[148:156] = b' ' * 8
    block[148:156] = b'%06o\\0 ' % sum(block)
    return bytes(block)
blocks = b''
for i, (name, kind, fields) in enumerate([('hl', tarfile.LNKTYPE, {'linkname': 'x'}), ('sl', tarfile.SYMTYPE, {'linkname': 'x'}),
        ('chr', tarfile.CHRTYPE, {}), ('blk', tarfile.BLKTYPE, {}), ('dir/', tarfile.DIRTYPE, {}), ('fifo', tarfile.FIFOTYPE, {}),
        ('old-dir/', tarfile.AREGTYPE, {})]):
    blocks += header_only(name, kind, **fields) + tarfile.TarInfo('after-%d' % i).tobuf(tarfile.USTAR_FORMAT)
buf.write(blocks)`;
    const archive = Buffer.concat([python(script), Buffer.alloc(1024)]);
    const names = execFileSync('python3', ['-c', 'import sys, tarfile\nfor m in tarfile.open(fileobj=sys.stdin.buffer, mode="r|"): print(m.name)'], { input: archive, encoding: 'utf8' }).trim().split('\n');
    assert.equal(names.length, 14, 'Python reads every header');
    assert.deepEqual(entries(archive).headers.map((h) => h.path.replace(/\/$/, '')), names, 'the same headers as Python (which drops a directory\'s slash)');
  });

  it('reads a file with sparse records of an unknown version as a plain file, as Go and Python do', () => {
    for (const [major, minor] of [['2', '0'], ['1', '1']]) {
      const archive = python(`info = tarfile.TarInfo('plain')\ninfo.size = 5\ninfo.pax_headers = {'GNU.sparse.major': '${major}', 'GNU.sparse.minor': '${minor}'}\nout.addfile(info, io.BytesIO(b'12345'))`);
      const result = entries(archive);
      assert.deepEqual([result.headers[0]!.path, result.headers[0]!.sparse, joined(result)[0]], ['plain', undefined, [[0, '12345']]], `sparse ${major}.${minor}`);
    }
  });
});
