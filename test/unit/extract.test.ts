/**
 * RootfsWriter on crafted layers: the OCI layer semantics, and every hostile
 * entry refused with nothing written outside the target directory.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { BlobVerificationError, ExtractionError, RootfsWriter, type RootfsWriterOptions } from '../../src/index.js';
import { native } from '../../src/native.js';
import { openFdsOn, tempDir } from '../support/env.js';
import { sha256 } from '../support/oci-layout.js';
import { tar, type TarEntry } from '../support/tar.js';

const layer = (entries: TarEntry[]) => Readable.from([tar(entries)]);

/** Applies layers into <tmp>/root and returns the tmp dir (root's parent catches escapes). */
async function extract(layers: TarEntry[][], options = {}) {
  const dir = tempDir();
  try {
    const root = join(dir.path, 'root');
    const writer = new RootfsWriter(root, options);
    for (const entries of layers) await writer.applyLayer(layer(entries));
    await writer.finish();
    return { dir, root };
  } catch (error) {
    dir[Symbol.dispose](); // a refused layer: the caller never gets the dir to remove
    throw error;
  }
}

/** Everything under a directory, as sorted relative paths. */
function tree(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const rel = prefix + entry.name;
    return entry.isDirectory() && !entry.isSymbolicLink() ? [rel + '/', ...tree(join(dir, entry.name), rel + '/')] : [rel];
  }).sort();
}

describe('RootfsWriter: layer semantics', () => {
  it('keeps files, dirs, symlinks, hardlinks, modes and mtimes', async () => {
    const { dir, root } = await extract([
      [
        { type: 'dir', name: 'bin/', mode: 0o750, mtime: 1_600_000_000 },
        { type: 'file', name: 'bin/tool', content: '#!/bin/sh\n', mode: 0o4755, mtime: 1_500_000_000 },
        { type: 'symlink', name: 'bin/alias', target: 'tool' },
        { type: 'hardlink', name: 'bin/tool2', target: 'bin/tool' },
        { type: 'file', name: 'deep/er/file.txt', content: 'implicit parents' },
      ],
    ]);
    using _ = dir;
    assert.deepEqual(tree(root), ['bin/', 'bin/alias', 'bin/tool', 'bin/tool2', 'deep/', 'deep/er/', 'deep/er/file.txt']);
    assert.equal(statSync(join(root, 'bin/tool')).mode & 0o7777, 0o4755);
    assert.equal(statSync(join(root, 'bin')).mode & 0o7777, 0o750);
    assert.equal(statSync(join(root, 'bin/tool')).mtimeMs, 1_500_000_000_000);
    assert.equal(statSync(join(root, 'bin')).mtimeMs, 1_600_000_000_000, 'directory mtime survives its children being written');
    assert.equal(readlinkSync(join(root, 'bin/alias')), 'tool');
    assert.equal(statSync(join(root, 'bin/tool2')).ino, statSync(join(root, 'bin/tool')).ino);
    assert.equal(readFileSync(join(root, 'deep/er/file.txt'), 'utf8'), 'implicit parents');
  });

  it('a writer resumed after the last layer still sets the directories the checkpoint holds (a run killed before finish)', async () => {
    using dir = tempDir();
    const root = join(dir.path, 'root');
    const first = new RootfsWriter(root);
    await first.applyLayer(layer([{ type: 'dir', name: 'etc/', mode: 0o750, mtime: 1_600_000_000 }, { type: 'file', name: 'etc/conf', content: 'x' }]));
    const checkpoint = first.checkpoint(); // the state file's, as extractImage records it after each layer
    assert.notEqual(statSync(join(root, 'etc')).mtimeMs, 1_600_000_000_000, 'not set until finish');
    // The process dies here; the next run has no layer left to apply.
    await new RootfsWriter(root, { resumeFrom: checkpoint }).finish();
    assert.equal(statSync(join(root, 'etc')).mtimeMs, 1_600_000_000_000);
    assert.equal(statSync(join(root, 'etc')).mode & 0o7777, 0o750);
  });

  it('applies whiteouts and opaque directories across layers', async () => {
    const { dir, root } = await extract([
      [
        { type: 'file', name: 'a/x', content: 'x' },
        { type: 'file', name: 'a/y', content: 'y' },
        { type: 'file', name: 'b/z', content: 'z' },
        { type: 'file', name: 'b/keep', content: 'keep' },
        { type: 'file', name: 'c/sub/deep', content: 'deep' },
      ],
      [
        { type: 'file', name: 'a/new', content: 'new' },
        { type: 'file', name: 'a/.wh..wh..opq', content: '' },
        { type: 'file', name: 'b/.wh.z', content: '' },
        { type: 'file', name: '.wh.c', content: '' },
      ],
      [{ type: 'file', name: 'b/z', content: 'back' }],
    ]);
    using _ = dir;
    assert.deepEqual(tree(root), ['a/', 'a/new', 'b/', 'b/keep', 'b/z']);
    assert.equal(readFileSync(join(root, 'b/z'), 'utf8'), 'back');
  });

  it('creates nothing for a whiteout below a directory no layer made', async () => {
    const { dir, root } = await extract([[{ type: 'file', name: 'a/b/.wh.c', content: '' }, { type: 'file', name: 'x/.wh..wh..opq', content: '' }]]);
    using _ = dir;
    assert.deepEqual(tree(root), []);
  });

  it('replaces entries of lower layers: file by dir, dir by symlink', async () => {
    const { dir, root } = await extract([
      [{ type: 'file', name: 'p', content: 'file' }, { type: 'file', name: 'q/inner', content: 'x' }],
      [{ type: 'dir', name: 'p/' }, { type: 'symlink', name: 'q', target: 'p' }],
    ]);
    using _ = dir;
    assert.ok(lstatSync(join(root, 'p')).isDirectory());
    assert.ok(lstatSync(join(root, 'q')).isSymbolicLink());
  });

  it('writes through a symlink that stays inside the root (merged /usr)', async () => {
    const { dir, root } = await extract([
      [{ type: 'dir', name: 'usr/lib/' }, { type: 'symlink', name: 'lib', target: 'usr/lib' }],
      [{ type: 'file', name: 'lib/libc.so', content: 'elf' }],
    ]);
    using _ = dir;
    assert.equal(readFileSync(join(root, 'usr/lib/libc.so'), 'utf8'), 'elf');
  });

  it('checks the uncompressed digest against the diff_id, for gzip too', async () => {
    using dir = tempDir();
    const raw = tar([{ type: 'file', name: 'f', content: 'data' }]);
    const writer = new RootfsWriter(join(dir.path, 'root'));
    assert.deepEqual(await writer.applyLayer(Readable.from([gzipSync(raw)]), { diffId: sha256(raw) }), { diffId: sha256(raw) });
    await assert.rejects(writer.applyLayer(Readable.from([gzipSync(raw)]), { diffId: sha256('other') }), BlobVerificationError);
  });

  it('reads zstd layers', async (t) => {
    const raw = tar([{ type: 'file', name: 'z.txt', content: 'zstd!' }]);
    let compressed: Buffer;
    try {
      compressed = execFileSync('zstd', ['-q', '-c'], { input: raw });
    } catch {
      t.skip('the zstd command is not installed (scripts/setup.sh installs it)');
      return;
    }
    using dir = tempDir();
    const writer = new RootfsWriter(join(dir.path, 'root'));
    await writer.applyLayer(Readable.from([compressed]), { diffId: sha256(raw) });
    assert.equal(readFileSync(join(dir.path, 'root', 'z.txt'), 'utf8'), 'zstd!');
  });

  it('keeps ownership when running as root, and only then by default', async (t) => {
    const entries: TarEntry[] = [{ type: 'file', name: 'owned', content: 'x', uid: 1234, gid: 4321 }, { type: 'symlink', name: 'link', target: 'owned' }];
    const { dir, root } = await extract([entries]);
    using _ = dir;
    const stat = lstatSync(join(root, 'owned'));
    if (process.getuid?.() !== 0) {
      assert.equal(stat.uid, process.getuid?.());
      t.skip('not root: ownership cannot be set, and is not by default');
      return;
    }
    assert.deepEqual([stat.uid, stat.gid], [1234, 4321]);
    const { dir: dir2, root: root2 } = await extract([entries], { preserveOwnership: false });
    using __ = dir2;
    assert.equal(lstatSync(join(root2, 'owned')).uid, 0);
  });

  it('creates device nodes only when allowed', async () => {
    const node: TarEntry[] = [{ type: 'char', name: 'dev/null', major: 1, minor: 3, mode: 0o666 }];
    await assert.rejects(extract([node], { allowDeviceNodes: false }), (e: unknown) => e instanceof ExtractionError && /device node/.test(e.message));
    if (process.getuid?.() === 0) {
      const { dir, root } = await extract([node], { allowDeviceNodes: true });
      using _ = dir;
      assert.ok(lstatSync(join(root, 'dev/null')).isCharacterDevice());
    }
  });
});

describe('RootfsWriter: hostile layers', () => {
  // `outside` is the temp dir holding the root: where an escape would land.
  const refused: Array<[string, (outside: string) => TarEntry[][], RegExp]> = [
    ['a ../ path', () => [[{ type: 'file', name: '../escape', content: 'x' }]], /^refusing layer entry "\.\.\/escape": it uses "\.\." in "\.\.\/escape" to climb out of the extraction directory$/],
    ['a nested ../ path', () => [[{ type: 'file', name: 'a/../../escape', content: 'x' }]], /it uses "\.\." in "a\/\.\.\/\.\.\/escape"/],
    ['an absolute path', (outside) => [[{ type: 'file', name: `${outside}/escape`, content: 'x' }]], /^refusing layer entry "\/.*\/escape": it uses the absolute path "\/.*\/escape"$/],
    ['a hardlink to outside', () => [[{ type: 'hardlink', name: 'hl', target: '../outside.txt' }]], /"hl": it uses "\.\." in "\.\.\/outside\.txt"/],
    ['a hardlink to an absolute path', () => [[{ type: 'hardlink', name: 'hl', target: '/etc/passwd' }]], /"hl": it uses the absolute path "\/etc\/passwd"/],
    ['a hardlink to the root directory', () => [[{ type: 'hardlink', name: 'hl', target: './' }]], /^refusing layer entry "hl": it is a hardlink to the root directory$/],
    ['a whiteout with ..', () => [[{ type: 'file', name: '../.wh.outside.txt', content: '' }]], /it uses "\.\." in/],
    ['a whiteout of ..', () => [[{ type: 'file', name: 'a/.wh...', content: '' }]], /^refusing layer entry "a\/\.wh\.\.\.": it is a whiteout of an invalid name$/],
    ['a whiteout of .', () => [[{ type: 'file', name: 'a/.wh..', content: '' }]], /"a\/\.wh\.\.": it is a whiteout of an invalid name/],
    // ".wh." alone names the directory it is in: it must not delete that directory.
    ['a whiteout of nothing', () => [[{ type: 'file', name: 'a/keep', content: 'x' }], [{ type: 'file', name: 'a/.wh.', content: '' }]], /"a\/\.wh\.": it is a whiteout of an invalid name/],
    ['a hardlink to a directory', () => [[{ type: 'dir', name: 'd/' }, { type: 'hardlink', name: 'hl', target: 'd' }]], /^refusing layer entry "hl": it is a hardlink to a directory \("d"\)$/],
    ['a file replacing the root', () => [[{ type: 'file', name: './', content: '', typeflag: '0' }]], /^refusing layer entry "\.\/": it replaces the root directory with a file$/],
  ];
  for (const [what, makeLayers, message] of refused) {
    it(`refuses ${what}`, async () => {
      using dir = tempDir();
      const outside = join(dir.path, 'outside.txt');
      writeFileSync(outside, 'precious');
      mkdirSync(join(dir.path, 'root'));
      const writer = new RootfsWriter(join(dir.path, 'root'));
      const attempt = (async () => {
        for (const entries of makeLayers(dir.path)) await writer.applyLayer(layer(entries));
      })();
      await assert.rejects(attempt, (e: unknown) => e instanceof ExtractionError && e.name === 'ExtractionError' && message.test(e.message));
      assert.equal(readFileSync(outside, 'utf8'), 'precious');
      assert.deepEqual(readdirSync(dir.path).sort(), ['outside.txt', 'root'], 'nothing created next to the root');
    });
  }

  // Symlinks are followed inside the root, as runtimes do (securejoin): the
  // entry lands at `inside`, never outside.
  const contained: Array<[string, (outside: string) => TarEntry[][], string]> = [
    ['writing through an absolute symlink', (outside) => [[{ type: 'symlink', name: 'link', target: outside }, { type: 'file', name: 'link/escape', content: 'x' }]], 'OUTSIDE/escape'],
    ['writing through a relative symlink that climbs out', () => [[{ type: 'symlink', name: 'link', target: '../..' }, { type: 'file', name: 'link/escape', content: 'x' }]], 'escape'],
    ['a symlink planted in one layer, written through in the next', () => [[{ type: 'symlink', name: 'link', target: '..' }], [{ type: 'file', name: 'link/escape', content: 'x' }]], 'escape'],
    ['a chain of symlinks leading out', () => [[{ type: 'symlink', name: 'one', target: 'two' }, { type: 'symlink', name: 'two', target: '../' }, { type: 'file', name: 'one/escape', content: 'x' }]], 'escape'],
    ['a symlink to a directory, a file written through it in a later layer', () => [[{ type: 'symlink', name: 'etc', target: '/' }], [{ type: 'file', name: 'etc/passwd-written', content: 'x' }]], 'passwd-written'],
    ['a hardlink through an escaping symlink', () => [[{ type: 'file', name: 'outside.txt', content: 'x' }, { type: 'symlink', name: 'up', target: '..' }, { type: 'hardlink', name: 'hl', target: 'up/outside.txt' }]], 'hl'],
  ];
  for (const [what, makeLayers, inside] of contained) {
    it(`keeps inside the root: ${what}`, async () => {
      using dir = tempDir();
      const outside = join(dir.path, 'outside.txt');
      writeFileSync(outside, 'precious');
      const root = join(dir.path, 'root');
      const writer = new RootfsWriter(root);
      for (const entries of makeLayers(dir.path)) await writer.applyLayer(layer(entries));
      await writer.finish();
      assert.equal(readFileSync(outside, 'utf8'), 'precious');
      assert.deepEqual(readdirSync(dir.path).sort(), ['outside.txt', 'root'], 'nothing created next to the root');
      assert.equal(readFileSync(join(root, inside.replace('OUTSIDE', dir.path.slice(1))), 'utf8'), 'x');
    });
  }

  it('never changes a host directory that replaced an image directory as a symlink (deferred metadata)', async () => {
    using dir = tempDir();
    const host = join(dir.path, 'host-dir');
    mkdirSync(host, { mode: 0o755 });
    const before = statSync(host);
    const writer = new RootfsWriter(join(dir.path, 'root'));
    await writer.applyLayer(layer([{ type: 'dir', name: 'var/tmp/', mode: 0o1777, mtime: 1 }, { type: 'dir', name: 'var/tmp/sub/', mode: 0o4777, mtime: 1 }]));
    await writer.applyLayer(layer([{ type: 'symlink', name: 'var/tmp', target: host }, { type: 'symlink', name: 'var/x', target: '/' }]));
    await writer.finish();
    const after = statSync(host);
    assert.equal(after.mode, before.mode, 'mode of the host directory untouched');
    assert.equal(after.mtimeMs, before.mtimeMs, 'mtime of the host directory untouched');
    assert.equal(statSync(dir.path).mode & 0o7777, 0o700, 'the temp dir itself untouched');
  });

  it('never follows a final symlink for metadata: a later entry of the same name replaces the link', async () => {
    using dir = tempDir();
    const host = join(dir.path, 'host-file');
    writeFileSync(host, 'precious', { mode: 0o600 });
    const writer = new RootfsWriter(join(dir.path, 'root'));
    await writer.applyLayer(layer([{ type: 'symlink', name: 'f', target: host }, { type: 'symlink', name: 'd', target: dir.path }]));
    await writer.applyLayer(layer([{ type: 'file', name: 'f', content: 'image', mode: 0o6777 }, { type: 'dir', name: 'd/', mode: 0o777 }]));
    await writer.finish();
    assert.equal(statSync(host).mode & 0o7777, 0o600);
    assert.equal(readFileSync(host, 'utf8'), 'precious');
    assert.equal(statSync(dir.path).mode & 0o7777, 0o700);
    assert.equal(readFileSync(join(dir.path, 'root/f'), 'utf8'), 'image');
  });

  it('links a symlink itself when a hardlink names one (never its target)', async () => {
    using dir = tempDir();
    const root = join(dir.path, 'root');
    const writer = new RootfsWriter(root);
    await writer.applyLayer(layer([{ type: 'symlink', name: 'ln', target: '/etc/passwd' }, { type: 'hardlink', name: 'hl', target: 'ln' }]));
    await writer.finish();
    assert.ok(lstatSync(join(root, 'hl')).isSymbolicLink());
    assert.equal(lstatSync(join(root, 'hl')).ino, lstatSync(join(root, 'ln')).ino);
  });

  it('refuses a non-empty directory by default: an opaque whiteout at the root would delete the user\'s files', async () => {
    using dir = tempDir();
    const root = join(dir.path, 'root');
    mkdirSync(root);
    writeFileSync(join(root, 'precious.txt'), 'mine');
    const opaqueRoot = layer([{ type: 'file', name: '.wh..wh..opq', content: '' }, { type: 'file', name: 'new', content: 'x' }]);
    await assert.rejects(new RootfsWriter(root).applyLayer(opaqueRoot), (e: unknown) => e instanceof ExtractionError && /is not empty/.test(e.message) && /allowNonEmpty/.test(e.message));
    assert.equal(readFileSync(join(root, 'precious.txt'), 'utf8'), 'mine');
    // Explicitly allowed, the layer applies: the documented risk.
    const writer = new RootfsWriter(root, { allowNonEmpty: true });
    await writer.applyLayer(layer([{ type: 'file', name: 'added', content: 'x' }]));
    assert.deepEqual(readdirSync(root).sort(), ['added', 'precious.txt']);
  });

  it('an opaque whiteout at the root removes what lower layers wrote, and keeps what its own layer wrote', async () => {
    const { dir, root } = await extract([
      [{ type: 'file', name: 'old', content: 'x' }, { type: 'file', name: 'etc/old', content: 'x' }],
      [{ type: 'file', name: 'etc/new', content: 'y' }, { type: 'file', name: '.wh..wh..opq', content: '' }],
    ]);
    using _ = dir;
    assert.deepEqual(tree(root), ['etc/', 'etc/new']);
  });

  it('names an entry whose name is too long, with a typed error', async () => {
    using dir = tempDir();
    const long = 'n'.repeat(300);
    const attempt = new RootfsWriter(join(dir.path, 'root')).applyLayer(layer([{ type: 'file', name: 'x', content: 'x', pax: { path: `d/${long}` } }]));
    await assert.rejects(attempt, (e: unknown) => e instanceof ExtractionError && e.message.includes(long) && /too long/.test(e.message));
  });

  it('extracts a path of 4,000 bytes', async () => {
    const path = Array.from({ length: 20 }, (_, i) => `${i}`.padEnd(199, 'p')).join('/');
    assert.equal(path.length, 3999);
    const { dir, root } = await extract([[{ type: 'file', name: 'x', content: 'deep', pax: { path } }]]);
    using _ = dir;
    assert.equal(readFileSync(join(root, path), 'utf8'), 'deep');
  });

  it('stops a decompression bomb at maxUncompressedBytes', async () => {
    using dir = tempDir();
    const bomb = gzipSync(tar([{ type: 'file', name: 'zeros', content: Buffer.alloc(8 * 1024 * 1024) }]));
    assert.ok(bomb.length < 64 * 1024);
    const writer = new RootfsWriter(join(dir.path, 'root'), { maxUncompressedBytes: 1024 * 1024 });
    await assert.rejects(writer.applyLayer(Readable.from([bomb])), (e: unknown) => e instanceof ExtractionError && /limit of 1048576 bytes/.test(e.message));
    assert.ok(statSync(join(dir.path, 'root/zeros')).size <= 2 * 1024 * 1024, 'stopped near the limit');
    assert.throws(() => new RootfsWriter(dir.path, { maxUncompressedBytes: -1 }), ExtractionError);
  });

  it('refuses a truncated archive', async () => {
    using dir = tempDir();
    const raw = tar([{ type: 'file', name: 'big', content: Buffer.alloc(4096, 1) }]).subarray(0, 1500);
    await assert.rejects(new RootfsWriter(join(dir.path, 'root')).applyLayer(Readable.from([raw])), ExtractionError);
  });
});

describe('RootfsWriter: what container runtimes do', () => {
  const isRoot = process.getuid?.() === 0;

  it('ignores whiteouts under a path that is no longer a directory (umoci writes the file first)', async () => {
    const { dir, root } = await extract([
      [{ type: 'dir', name: 'etc/apt/apt.conf.d/' }, { type: 'file', name: 'etc/apt/apt.conf.d/old', content: 'x' }],
      [
        { type: 'file', name: 'etc/apt/apt.conf.d', content: 'now a file', mode: 0o644 },
        { type: 'file', name: 'etc/apt/apt.conf.d/.wh.old', content: '' },
        { type: 'file', name: 'etc/apt/apt.conf.d/.wh..wh..opq', content: '' },
      ],
    ]);
    using _ = dir;
    assert.equal(readFileSync(join(root, 'etc/apt/apt.conf.d'), 'utf8'), 'now a file');
  });

  it('gives a file that replaces a directory its own mode and mtime, not the old directory\'s', async () => {
    const { dir, root } = await extract([
      [{ type: 'dir', name: 'etc/conf.d/', mode: 0o755, mtime: 1_600_000_000 }, { type: 'file', name: 'etc/conf.d/x', content: 'x' }],
      [{ type: 'file', name: 'etc/conf.d', content: 'file', mode: 0o644, mtime: 1_500_000_000 }],
    ]);
    using _ = dir;
    const stat = lstatSync(join(root, 'etc/conf.d'));
    assert.ok(stat.isFile());
    assert.equal(stat.mode & 0o7777, 0o644);
    assert.equal(stat.mtimeMs, 1_500_000_000_000);
  });

  it('applies xattrs from PAX SCHILY.xattr records (user.* always; security.capability as root)', async (t) => {
    const capability = Buffer.from('0100000200200000000000000000000000000000', 'hex'); // cap_net_raw+ep
    const { dir, root } = await extract([
      [
        { type: 'file', name: 'file', content: 'x', pax: { 'SCHILY.xattr.user.fixture': 'some value', 'SCHILY.xattr.user.binary': Buffer.from([0, 1, 0xff]) } },
        { type: 'dir', name: 'dir/', pax: { 'SCHILY.xattr.user.dir': 'on a directory' } },
        { type: 'file', name: 'ping', content: 'elf', mode: 0o755, uid: 0, gid: 0, pax: { 'SCHILY.xattr.security.capability': capability } },
      ],
    ]);
    using _ = dir;
    const xattr = (path: string, name: string) => native.getXattr(Buffer.from(join(root, path)), name);
    assert.equal(xattr('file', 'user.fixture').toString(), 'some value');
    assert.deepEqual(xattr('file', 'user.binary'), Buffer.from([0, 1, 0xff]));
    assert.equal(xattr('dir', 'user.dir').toString(), 'on a directory');
    if (!isRoot) {
      t.skip('not root: security.capability cannot be set (the report lists it as skipped; tested below)');
      return;
    }
    assert.deepEqual(xattr('ping', 'security.capability'), capability);
  });

  it('reports the xattrs it could not set instead of dropping them silently', async () => {
    using dir = tempDir();
    const writer = new RootfsWriter(join(dir.path, 'root'));
    await writer.applyLayer(layer([{ type: 'symlink', name: 'l', target: 'x', pax: { 'SCHILY.xattr.user.on-link': 'v' } }]));
    const report = await writer.finish();
    assert.deepEqual(report.skippedXattrs, [{ name: 'user.on-link', entries: 1, reason: 'Linux allows no user.* attributes on symlinks' }]);
    assert.equal(report.entries, 1);
  });

  it('keeps non-UTF-8 names as their exact bytes, never merging two into one', async () => {
    const names = [Buffer.from('caf\xe9', 'latin1'), Buffer.from('x\xff', 'latin1'), Buffer.from('x\xfe', 'latin1'), Buffer.from('\xff\xfe', 'latin1'), Buffer.from('line\nbreak')];
    const { dir, root } = await extract([names.map((name, i) => ({ type: 'file' as const, name: Buffer.concat([Buffer.from('d/'), name]), content: `content ${i}` }))]);
    using _ = dir;
    const found = readdirSync(join(root, 'd'), { encoding: 'buffer' }).map((name) => name.toString('latin1')).sort();
    assert.deepEqual(found, names.map((name) => name.toString('latin1')).sort());
    names.forEach((name, i) => assert.equal(readFileSync(Buffer.concat([Buffer.from(`${root}/d/`), name]), 'utf8'), `content ${i}`));
  });

  it('keeps non-UTF-8 names in PAX path, linkpath and symlink targets', async () => {
    const name = Buffer.from('caf\xe9', 'latin1');
    const { dir, root } = await extract([
      [
        { type: 'file', name: 'placeholder', content: 'x', pax: { path: name } },
        { type: 'symlink', name: 'link', target: name },
        { type: 'hardlink', name: 'hard', target: 'placeholder', pax: { linkpath: name } },
      ],
    ]);
    using _ = dir;
    const bytes = (path: string) => Buffer.from(path, 'latin1');
    assert.equal(readlinkSync(bytes(`${root}/link`), { encoding: 'buffer' }).toString('latin1'), 'caf\xe9');
    assert.equal(lstatSync(bytes(`${root}/hard`)).ino, lstatSync(bytes(`${root}/caf\xe9`)).ino);
  });

  it('gives device nodes and fifos their exact mode (no umask) and mtime', async (t) => {
    const entries: TarEntry[] = [{ type: 'fifo', name: 'dev/fifo', mode: 0o666, mtime: 1_400_000_000 }];
    if (isRoot) entries.push({ type: 'char', name: 'dev/null', major: 1, minor: 3, mode: 0o666, mtime: 1_400_000_000 });
    const { dir, root } = await extract([entries]);
    using _ = dir;
    for (const entry of entries) {
      const stat = lstatSync(join(root, entry.name as string));
      assert.equal(stat.mode & 0o7777, 0o666, `${entry.name} mode`);
      assert.equal(stat.mtimeMs, 1_400_000_000_000, `${entry.name} mtime`);
    }
    if (!isRoot) t.skip('not root: only the fifo was checked (device nodes need root)');
  });

  it('applies the layer\'s "./" entry to the root directory', async () => {
    const { dir, root } = await extract([[{ type: 'dir', name: './', mode: 0o750, mtime: 1_300_000_000 }, { type: 'file', name: 'f', content: 'x' }]]);
    using _ = dir;
    assert.equal(statSync(root).mode & 0o7777, 0o750);
    assert.equal(statSync(root).mtimeMs, 1_300_000_000_000);
  });

  it('keeps mtimes to the nanosecond (PAX mtime)', async () => {
    const { dir, root } = await extract([[{ type: 'file', name: 'f', content: 'x', pax: { mtime: '1700000000.123456789' } }, { type: 'dir', name: 'd/', pax: { mtime: '1600000000.5' } }]]);
    using _ = dir;
    assert.equal(lstatSync(join(root, 'f'), { bigint: true }).mtimeNs, 1_700_000_000_123_456_789n);
    assert.equal(lstatSync(join(root, 'd'), { bigint: true }).mtimeNs, 1_600_000_000_500_000_000n);
  });

  it('fails on a tar entry type it cannot represent, naming the entry and the type', async () => {
    using dir = tempDir();
    const attempt = new RootfsWriter(join(dir.path, 'root')).applyLayer(layer([{ type: 'file', name: 'mystery', content: 'x', typeflag: 'Z' }]));
    await assert.rejects(attempt, (e: unknown) => e instanceof ExtractionError && /"mystery"/.test(e.message) && /type "Z"/.test(e.message));
  });
});

describe('RootfsWriter: options, errors and what a layer leaves behind', () => {
  const isRoot = process.getuid?.() === 0;

  it('maxUncompressedBytes: 0 is a limit, a negative one is refused by name, and a layer of exactly the limit passes', async () => {
    using dir = tempDir();
    const raw = tar([{ type: 'file', name: 'f', content: 'data' }]);
    assert.throws(() => new RootfsWriter(dir.path, { maxUncompressedBytes: -1 }), { name: 'ExtractionError', message: 'maxUncompressedBytes must be a non-negative integer, got -1' });
    await assert.rejects(new RootfsWriter(join(dir.path, 'zero'), { maxUncompressedBytes: 0 }).applyLayer(Readable.from([raw])), /limit of 0 bytes/);
    await new RootfsWriter(join(dir.path, 'exact'), { maxUncompressedBytes: raw.length }).applyLayer(Readable.from([raw]));
    await assert.rejects(new RootfsWriter(join(dir.path, 'under'), { maxUncompressedBytes: raw.length - 1 }).applyLayer(Readable.from([raw])), /limit of/);
  });

  it('verifies sha384 and sha512 diff_ids, refuses another algorithm by name, and reports a mismatch with unknown sizes', async () => {
    using dir = tempDir();
    const raw = tar([{ type: 'file', name: 'f', content: 'data' }]);
    const writer = new RootfsWriter(join(dir.path, 'root'));
    for (const algorithm of ['sha384', 'sha512']) {
      const diffId = `${algorithm}:${createHash(algorithm).update(raw).digest('hex')}`;
      assert.deepEqual(await writer.applyLayer(Readable.from([raw]), { diffId }), { diffId });
    }
    await assert.rejects(writer.applyLayer(Readable.from([raw]), { diffId: 'md5:0123' }), { name: 'ExtractionError', message: 'unsupported diff_id algorithm in md5:0123' });
    const error = await writer.applyLayer(Readable.from([raw]), { diffId: sha256('other') }).catch((e: unknown) => e);
    assert.ok(error instanceof BlobVerificationError);
    assert.deepEqual([error.digest, error.expectedSize, error.actualSize], [sha256('other'), -1, -1]);
    assert.equal(error.detail, `the uncompressed layer hashes to ${sha256(raw)}, not to its diff_id`);
  });

  it('a layer that does not decompress is an ExtractionError with the zlib error as its cause', async () => {
    using dir = tempDir();
    const gzip = gzipSync(tar([{ type: 'file', name: 'f', content: Buffer.alloc(4096, 7) }]));
    gzip.fill(0xff, 20, 60); // the deflate stream, after the gzip header
    const error = await new RootfsWriter(join(dir.path, 'root')).applyLayer(Readable.from([gzip])).catch((e: unknown) => e);
    assert.ok(error instanceof ExtractionError, String(error));
    assert.match(error.message, /^the layer does not decompress: /);
    assert.match(String((error.cause as NodeJS.ErrnoException).code), /^Z_/);
  });

  it('a blob stream that fails passes its own error through (not "does not decompress")', async () => {
    using dir = tempDir();
    const failure = Object.assign(new Error('the proxy went away'), { code: 'ECONNRESET' });
    const blob = new Readable({ read() { this.destroy(failure); } });
    await assert.rejects(new RootfsWriter(join(dir.path, 'root')).applyLayer(blob), (e: unknown) => e === failure);
  });

  it('names the errno, the syscall and the cause of a failed entry, and of a layer that is not tar', async () => {
    using dir = tempDir();
    const long = 'n'.repeat(300);
    const error = await new RootfsWriter(join(dir.path, 'root')).applyLayer(layer([{ type: 'file', name: 'x', content: 'x', pax: { path: long } }])).catch((e: unknown) => e);
    assert.ok(error instanceof ExtractionError);
    assert.equal(error.message, `cannot extract "${long}" (file): the name or path is too long for this system (ENAMETOOLONG in open)`);
    assert.equal((error.cause as NodeJS.ErrnoException).code, 'ENAMETOOLONG');
    const notTar = await new RootfsWriter(join(dir.path, 'root2')).applyLayer(Readable.from([Buffer.alloc(1024, 'x')])).catch((e: unknown) => e);
    assert.ok(notTar instanceof ExtractionError);
    assert.match(notTar.message, /^the layer is not a valid tar archive: /);
    assert.equal((notTar.cause as Error).name, 'TarFormatError');
  });

  it('prepare() creates the directory and refuses a non-empty one before any layer; finish() without a layer touches nothing', async () => {
    using dir = tempDir();
    await new RootfsWriter(join(dir.path, 'new')).prepare();
    assert.deepEqual(readdirSync(join(dir.path, 'new')), []);
    writeFileSync(join(dir.path, 'new', 'mine'), 'x');
    await assert.rejects(new RootfsWriter(join(dir.path, 'new')).prepare(), (e: unknown) => e instanceof ExtractionError && /is not empty/.test(e.message));
    assert.deepEqual(await new RootfsWriter(join(dir.path, 'new')).finish(), { entries: 0, skippedXattrs: [] }, 'no refusal: nothing was to be written');
    assert.deepEqual(await new RootfsWriter(join(dir.path, 'never')).finish(), { entries: 0, skippedXattrs: [] });
    assert.equal(existsSync(join(dir.path, 'never')), false);
  });

  it('leaves no file descriptor open, after a whole layer and after one that breaks off inside a file', async () => {
    using dir = tempDir();
    const entries: TarEntry[] = Array.from({ length: 20 }, (_, i): TarEntry[] => [{ type: 'dir', name: `d${i}/` }, { type: 'file', name: `d${i}/f`, content: 'x' }]).flat();
    const writer = new RootfsWriter(join(dir.path, 'root'));
    await writer.applyLayer(layer(entries));
    await writer.finish();
    assert.deepEqual(openFdsOn(dir.path), [], 'after a layer and finish()');
    const cut = tar([{ type: 'file', name: 'big', content: Buffer.alloc(64 * 1024, 1) }]).subarray(0, 8192);
    await assert.rejects(new RootfsWriter(join(dir.path, 'root2')).applyLayer(Readable.from([cut])), ExtractionError);
    assert.deepEqual(openFdsOn(dir.path), [], 'after a layer that ended inside a file');
  });

  it('a directory removed and made again by a later layer gets the new one\'s metadata, not the old deferred one', async () => {
    const { dir, root } = await extract([
      [{ type: 'dir', name: 'd/', mode: 0o700, mtime: 1_000_000_000 }, { type: 'dir', name: 'd/sub/', mode: 0o700, mtime: 1_000_000_000 }, { type: 'dir', name: 'keep/', mode: 0o750, mtime: 1_000_000_000 }],
      [{ type: 'file', name: '.wh.d', content: '' }, { type: 'file', name: 'd/sub/f', content: 'x' }],
    ]);
    using _ = dir;
    assert.equal(statSync(join(root, 'keep')).mode & 0o7777, 0o750, 'another directory keeps its own');
    assert.equal(statSync(join(root, 'keep')).mtimeMs, 1_000_000_000_000);
    for (const path of ['d', 'd/sub']) {
      const stat = statSync(join(root, path));
      assert.equal(stat.mode & 0o7777, 0o755, `${path}: made implicitly, 0755`);
      assert.notEqual(stat.mtimeMs, 1_000_000_000_000, `${path}: not the removed directory's mtime`);
    }
  });

  it('a resumed run sets a checkpoint directory only where it still is: not through a symlink that replaced it since', async () => {
    using dir = tempDir();
    const root = join(dir.path, 'root');
    const first = new RootfsWriter(root);
    await first.applyLayer(layer([{ type: 'dir', name: 'x/', mode: 0o700, mtime: 1_000_000_000 }, { type: 'dir', name: 'x/sub/', mode: 0o700, mtime: 1_000_000_000 }]));
    const checkpoint = first.checkpoint();
    // Between the runs, x became a symlink to y (y/sub is another directory than x/sub).
    rmSync(join(root, 'x'), { recursive: true });
    mkdirSync(join(root, 'y/sub'), { recursive: true, mode: 0o755 });
    symlinkSync('y', join(root, 'x'));
    await new RootfsWriter(root, { resumeFrom: checkpoint }).finish();
    for (const path of ['y', 'y/sub']) {
      assert.equal(statSync(join(root, path)).mode & 0o7777, 0o755, path);
      assert.notEqual(statSync(join(root, path)).mtimeMs, 1_000_000_000_000, path);
    }
  });

  it('a fifo is made when device nodes are not allowed; ownership of directories, symlinks and fifos as the layer says (root)', async (t) => {
    const entries: TarEntry[] = [
      { type: 'fifo', name: 'fifo', uid: 1234, gid: 4321 },
      { type: 'dir', name: 'dir/', uid: 1234, gid: 4321 },
      { type: 'symlink', name: 'link', target: 'dir', uid: 1234, gid: 4321 },
    ];
    const { dir, root } = await extract([entries], { allowDeviceNodes: false });
    using _ = dir;
    assert.ok(lstatSync(join(root, 'fifo')).isFIFO());
    if (!isRoot) {
      t.skip('not root: ownership cannot be set');
      return;
    }
    for (const name of ['fifo', 'dir', 'link']) assert.deepEqual([lstatSync(join(root, name)).uid, lstatSync(join(root, name)).gid], [1234, 4321], name);
    const { dir: dir2, root: root2 } = await extract([entries], { preserveOwnership: false });
    using __ = dir2;
    for (const name of ['fifo', 'dir', 'link']) assert.equal(lstatSync(join(root2, name)).uid, 0, name);
  });

  it('hardlinks: one replacing another file links to its target; one to itself keeps the file; a missing target is named', async () => {
    const { dir, root } = await extract([
      [{ type: 'file', name: 'a', content: 'one' }, { type: 'file', name: 'b', content: 'two' }],
      [{ type: 'hardlink', name: 'b', target: 'a' }, { type: 'hardlink', name: 'a', target: 'a' }],
    ]);
    using _ = dir;
    assert.equal(readFileSync(join(root, 'b'), 'utf8'), 'one');
    assert.equal(statSync(join(root, 'b')).ino, statSync(join(root, 'a')).ino);
    // "null/x" exists: a lookup that lost track of the missing directory would find it.
    using dir2 = tempDir();
    const missing = new RootfsWriter(join(dir2.path, 'root')).applyLayer(layer([{ type: 'file', name: 'null/x', content: 'x' }, { type: 'hardlink', name: 'h', target: 'missing/x' }]));
    await assert.rejects(missing, { name: 'ExtractionError', message: '"h": its hardlink target "missing/x" does not exist in the image' });
  });

  it('whiteouts: only in their own directory, not below a missing one, and of names that are not UTF-8 under an opaque directory', async () => {
    const odd = Buffer.from('caf\xe9', 'latin1');
    const { dir, root } = await extract([
      [
        { type: 'file', name: 'x', content: 'top' },
        { type: 'file', name: 'a/x', content: 'in a' },
        { type: 'file', name: 'null/y', content: 'in null' },
        { type: 'file', name: Buffer.concat([Buffer.from('o/'), odd]), content: 'lower' },
      ],
      [
        { type: 'file', name: 'a/.wh.x', content: '' },
        { type: 'file', name: 'missing/.wh.y', content: '' },
        { type: 'file', name: 'o/.wh..wh..opq', content: '' },
      ],
    ]);
    using _ = dir;
    assert.deepEqual(tree(root), ['a/', 'null/', 'null/y', 'o/', 'x']);
  });

  it('an opaque whiteout at the root keeps only what its layer wrote and their parents, not names that are their prefixes', async () => {
    const { dir, root } = await extract([
      [{ type: 'dir', name: 'etc/' }, { type: 'file', name: 'etc/old', content: 'lower' }, { type: 'file', name: 'e', content: 'lower' }, { type: 'file', name: 'et', content: 'lower' }],
      [{ type: 'file', name: 'etc/new', content: 'upper' }, { type: 'file', name: '.wh..wh..opq', content: '' }],
    ]);
    using _ = dir;
    assert.deepEqual(tree(root), ['etc/', 'etc/new']);
  });

  it('replaces a lower file, symlink or fifo by an entry of the same name', async () => {
    const { dir, root } = await extract([
      [{ type: 'file', name: 'f', content: 'old' }, { type: 'symlink', name: 's', target: 'old' }, { type: 'fifo', name: 'p' }],
      [{ type: 'file', name: 'f', content: 'new' }, { type: 'symlink', name: 's', target: 'new' }, { type: 'file', name: 'p', content: 'now a file' }],
    ]);
    using _ = dir;
    assert.equal(readFileSync(join(root, 'f'), 'utf8'), 'new');
    assert.equal(readlinkSync(join(root, 's')), 'new');
    assert.equal(readFileSync(join(root, 'p'), 'utf8'), 'now a file');
  });
});

/**
 * Runs `work` as the user nobody would (effective uid and gid 65534, so the
 * kernel checks permissions and grants no capability; process.getuid() says
 * 65534 too, as RootfsWriter reads it), then back as root. The library is
 * loaded already: only the extraction's own file system calls run as nobody.
 */
async function asNobody<T>(work: () => Promise<T>): Promise<T> {
  const getuid = process.getuid;
  process.setegid!(NOBODY);
  process.seteuid!(NOBODY);
  process.getuid = () => NOBODY;
  try {
    return await work();
  } finally {
    process.seteuid!(0);
    process.setegid!(0);
    process.getuid = getuid;
  }
}
const NOBODY = 65534;
const NEEDS_ROOT = 'not root: this test takes the identity of another user, or sets what only root may';

describe('RootfsWriter: as a user without privileges (root taking the identity of nobody)', () => {
  const isRoot = process.getuid?.() === 0;
  /** A temp dir nobody owns (its ancestors are world-searchable temp dirs). */
  function nobodysDir() {
    const dir = tempDir();
    chownSync(dir.path, NOBODY, NOBODY);
    return dir;
  }

  it('finish() sets the deepest directories first, so a parent (and the root) made unsearchable comes last; ownership not kept and non-user xattrs skipped by default', async (t) => {
    if (!isRoot) return t.skip(NEEDS_ROOT);
    using dir = nobodysDir();
    const root = join(dir.path, 'root');
    const trusted = { 'SCHILY.xattr.trusted.cip': 'root only', 'SCHILY.xattr.user.cip': 'anyone' };
    const report = await asNobody(async () => {
      const writer = new RootfsWriter(root);
      await writer.applyLayer(layer([
        { type: 'dir', name: './', mode: 0o600, mtime: 1_300_000_000 }, // no search permission, for its owner too
        { type: 'dir', name: 'd/', mode: 0o600, mtime: 1_400_000_000 },
        { type: 'dir', name: 'd/sub/', mode: 0o500, mtime: 1_500_000_000 },
        { type: 'file', name: 'd/sub/f', content: 'x', uid: 1234, gid: 4321, pax: trusted },
        { type: 'file', name: 'g', content: 'y', pax: trusted },
      ]));
      return writer.finish();
    });
    assert.deepEqual(report.skippedXattrs, [{ name: 'trusted.cip', entries: 2, reason: 'only root may set attributes outside the user.* namespace' }]);
    for (const [path, mode, mtime] of [['', 0o600, 1_300_000_000], ['d', 0o600, 1_400_000_000], ['d/sub', 0o500, 1_500_000_000]] as const) {
      const stat = statSync(join(root, path));
      assert.deepEqual([stat.mode & 0o7777, stat.mtimeMs, stat.uid], [mode, mtime * 1000, NOBODY], `root/${path}`);
    }
    const file = statSync(join(root, 'd/sub/f'));
    assert.deepEqual([file.uid, file.gid], [NOBODY, NOBODY], 'the layer\'s owner is not kept (nor tried) by default');
    assert.equal(native.getXattr(Buffer.from(join(root, 'd/sub/f')), 'user.cip').toString(), 'anyone');
  });

  it('names what the kernel refuses it: ownership, a device node, a directory it may not write, a root it may not open', async (t) => {
    if (!isRoot) return t.skip(NEEDS_ROOT);
    using dir = nobodysDir();
    mkdirSync(join(dir.path, 'mixed/sys'), { recursive: true, mode: 0o755 }); // root's: nobody may not write in sys/
    chownSync(join(dir.path, 'mixed'), NOBODY, NOBODY);
    const failure = (root: string, options: RootfsWriterOptions, entries: TarEntry[]) =>
      asNobody(() => new RootfsWriter(join(dir.path, root), options).applyLayer(layer(entries))).then(() => 'applied', (e: unknown) => (e as Error).message);
    assert.equal(await failure('own', { preserveOwnership: true }, [{ type: 'file', name: 'f', content: 'x', uid: 1234, gid: 4321 }]), 'cannot extract "f" (file): operation not permitted (EPERM in fchown)');
    // The addon's errors name no syscall.
    assert.equal(await failure('dev', { allowDeviceNodes: true }, [{ type: 'char', name: 'null', major: 1, minor: 3 }]), 'cannot extract "null" (char): operation not permitted (EPERM)');
    assert.equal(await failure('mixed', { allowNonEmpty: true }, [{ type: 'file', name: 'sys/f', content: 'x' }]), 'cannot extract "sys/f" (file): permission denied (EACCES in open)');
    // finish() skips a root that is gone (next test), not one it may not open.
    const root = join(dir.path, 'closed');
    const error = await asNobody(async () => {
      const writer = new RootfsWriter(root);
      await writer.applyLayer(layer([{ type: 'dir', name: './', mode: 0o755 }]));
      chmodSync(root, 0);
      return writer.finish().then(() => undefined, (e: unknown) => e as NodeJS.ErrnoException);
    });
    assert.equal(error?.code, 'EACCES');
  });
});

describe('RootfsWriter: what finish() and odd names meet', () => {
  const isRoot = process.getuid?.() === 0;

  it('finish() skips the root directory\'s own metadata when the root is gone or replaced since its layers (by a file, or by a symlink loop)', async () => {
    for (const replace of [(_root: string) => undefined, (root: string) => writeFileSync(root, 'mine', { mode: 0o640 }), (root: string) => symlinkSync('root', root)]) {
      using dir = tempDir();
      const root = join(dir.path, 'root');
      const writer = new RootfsWriter(root);
      await writer.applyLayer(layer([{ type: 'dir', name: './', mode: 0o700, mtime: 1_000_000_000 }, { type: 'file', name: 'f', content: 'x' }]));
      rmSync(root, { recursive: true });
      replace(root);
      assert.deepEqual(await writer.finish(), { entries: 2, skippedXattrs: [] });
      if (existsSync(root) && !lstatSync(root).isSymbolicLink()) {
        assert.deepEqual([readFileSync(root, 'utf8'), statSync(root).mode & 0o7777], ['mine', 0o640], 'the file that replaced it is untouched');
      }
    }
  });

  it('an AUFS bookkeeping entry (.wh..wh.plnk) deletes nothing: not a file named like what it would white out', async () => {
    using dir = tempDir();
    const root = join(dir.path, 'root');
    mkdirSync(root);
    writeFileSync(join(root, '.wh.plnk'), 'mine');
    const writer = new RootfsWriter(root, { allowNonEmpty: true });
    await writer.applyLayer(layer([{ type: 'dir', name: '.wh..wh.plnk/' }, { type: 'file', name: '.wh..wh.aufs', content: '' }]));
    await writer.finish();
    assert.deepEqual(readdirSync(root), ['.wh.plnk']);
  });

  it('sets attributes outside user.* on symlinks and fifos as root (never following the link)', async (t) => {
    if (!isRoot) return t.skip(NEEDS_ROOT);
    const xattr = { 'SCHILY.xattr.trusted.cip': 'on the node itself' };
    const { dir, root } = await extract([[{ type: 'file', name: 'target', content: 'x' }, { type: 'symlink', name: 'link', target: 'target', pax: xattr }, { type: 'fifo', name: 'fifo', pax: xattr }]]);
    using _ = dir;
    for (const name of ['link', 'fifo']) assert.equal(native.getXattr(Buffer.from(join(root, name)), 'trusted.cip').toString(), 'on the node itself', name);
    assert.throws(() => native.getXattr(Buffer.from(join(root, 'target')), 'trusted.cip'), { code: 'ENODATA' });
  });

  it('a file larger than the file size limit fails with EFBIG named, after a short write (a child process under ulimit -f)', () => {
    // 1 MiB limit (Node ignores SIGXFSZ): the 2 MiB file, one chunk, is written short once, then refused.
    using dir = tempDir();
    const module = new URL('../../src/index.js', import.meta.url).href;
    const tarModule = new URL('../support/tar.js', import.meta.url).href;
    const script = `
      import { Readable } from 'node:stream';
      import { RootfsWriter } from ${JSON.stringify(module)};
      import { fileHeader } from ${JSON.stringify(tarModule)};
      const size = 2 * 1024 * 1024;
      const layer = Buffer.concat([fileHeader('big', size), Buffer.alloc(size, 1), Buffer.alloc(1024)]);
      const outcome = await new RootfsWriter(process.argv[1]).applyLayer(Readable.from([layer])).then(() => 'applied', (error) => error.message);
      console.log(JSON.stringify(outcome));`;
    const child = spawnSync('bash', ['-c', 'ulimit -f 1024 && exec "$0" --input-type=module -e "$1" "$2"', process.execPath, script, join(dir.path, 'root')], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(JSON.parse(child.stdout), 'cannot extract "big" (file): the file is too large for the target filesystem (EFBIG in write)');
    assert.equal(statSync(join(dir.path, 'root/big')).size, 1024 * 1024, 'the short write came first');
  });
});

describe('RootfsWriter on other file systems (a child process with mounts of its own: unshare -m)', () => {
  /** Why the child cannot run here, or undefined when it can (root, with CAP_SYS_ADMIN for a private mount namespace). */
  const cannotMount = (() => {
    if (process.getuid?.() !== 0) return NEEDS_ROOT;
    const probe = spawnSync('unshare', ['--mount', 'true'], { encoding: 'utf8' });
    return probe.status === 0 ? undefined : `unshare --mount failed here (needs CAP_SYS_ADMIN): ${(probe.stderr || String(probe.error)).trim()}`;
  })();

  it('skips xattrs a file system does not support (ramfs), names ENOSPC and EROFS, and never takes a same-numbered inode of another file system for the link target', async (t) => {
    if (cannotMount) return t.skip(cannotMount);
    using dir = tempDir();
    const module = new URL('../../src/index.js', import.meta.url).href;
    const tarModule = new URL('../support/tar.js', import.meta.url).href;
    const script = `
      import { lstatSync } from 'node:fs';
      import { Readable } from 'node:stream';
      import { RootfsWriter } from ${JSON.stringify(module)};
      import { tar } from ${JSON.stringify(tarModule)};
      const at = (name) => process.argv[1] + '/' + name;
      async function outcome(root, options, ...layers) {
        const writer = new RootfsWriter(at(root), options);
        try {
          for (const entries of layers) await writer.applyLayer(Readable.from([tar(entries)]));
          return await writer.finish();
        } catch (error) {
          return error.message;
        }
      }
      const xattrs = { 'SCHILY.xattr.user.a': '1', 'SCHILY.xattr.trusted.b': '2' };
      const results = {
        ramfs: await outcome('ramfs', { allowNonEmpty: true }, [{ type: 'file', name: 'f', content: 'x', pax: xattrs }, { type: 'dir', name: 'd/', pax: { 'SCHILY.xattr.user.a': '3' } }]),
        full: await outcome('full', { allowNonEmpty: true }, [{ type: 'file', name: 'big', content: Buffer.alloc(256 * 1024, 1) }]),
        ro: await outcome('ro', { allowNonEmpty: true }, [{ type: 'file', name: 'f', content: 'x' }]),
        files: await outcome('two', { allowNonEmpty: true }, [{ type: 'file', name: 'a/x', content: 'on a' }, { type: 'file', name: 'b/x', content: 'on b' }]),
      };
      results.inodes = ['a/x', 'b/x'].map((name) => lstatSync(at('two/' + name))).map(({ ino, dev }) => ({ ino, dev }));
      results.two = await outcome('two', { allowNonEmpty: true }, [{ type: 'hardlink', name: 'b/x', target: 'a/x' }]);
      console.log(JSON.stringify(results));`;
    const mounts = [
      'set -e; d="$1"; mkdir -p "$d/ramfs" "$d/full" "$d/ro" "$d/two/a" "$d/two/b"',
      'mount -t ramfs none "$d/ramfs"',
      'mount -t tmpfs -o size=64k none "$d/full"',
      'mount -t tmpfs -o ro none "$d/ro"',
      'mount -t tmpfs none "$d/two/a"; mount -t tmpfs none "$d/two/b"',
      'exec "$0" --input-type=module -e "$2" "$d"',
    ].join('\n');
    const child = spawnSync('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', mounts, process.execPath, dir.path, script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(child.status, 0, child.stderr);
    const results = JSON.parse(child.stdout);
    const unsupported = 'the target filesystem does not support it';
    assert.deepEqual(results.ramfs, { entries: 2, skippedXattrs: [{ name: 'user.a', entries: 2, reason: unsupported }, { name: 'trusted.b', entries: 1, reason: unsupported }] });
    assert.equal(results.full, 'cannot extract "big" (file): no space left on the device (ENOSPC in write)');
    assert.equal(results.ro, 'cannot extract "f" (file): the target filesystem is read-only (EROFS in open)');
    // a/x and b/x are each the first file of a fresh tmpfs: the same inode number, on two devices. Linking
    // across file systems fails; the link must not be skipped as "already linked".
    const [a, b] = results.inodes;
    assert.ok(a.ino === b.ino && a.dev !== b.dev, `the premise: one inode number on two devices (${JSON.stringify(results.inodes)})`);
    assert.equal(results.two, 'cannot extract "b/x" (hardlink): EXDEV (EXDEV in link)');
  });

  it('fails on an xattr the kernel refuses for another reason than support (a value over 64 KiB: E2BIG)', async () => {
    using dir = tempDir();
    const attempt = new RootfsWriter(join(dir.path, 'root')).applyLayer(layer([{ type: 'file', name: 'f', content: 'x', pax: { 'SCHILY.xattr.user.big': Buffer.alloc(64 * 1024 + 1, 1) } }]));
    await assert.rejects(attempt, { name: 'ExtractionError', message: 'cannot extract "f" (file): E2BIG (E2BIG)' });
  });
});
