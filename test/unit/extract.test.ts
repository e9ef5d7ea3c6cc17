/**
 * RootfsWriter on crafted layers: the OCI layer semantics, and every hostile
 * entry refused with nothing written outside the target directory.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, readlinkSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { BlobVerificationError, ExtractionError, RootfsWriter } from '../../src/index.js';
import { tempDir } from '../support/env.js';
import { sha256 } from '../support/oci-layout.js';
import { tar, type TarEntry } from '../support/tar.js';

const layer = (entries: TarEntry[]) => Readable.from([tar(entries)]);

/** Applies layers into <tmp>/root and returns the tmp dir (root's parent catches escapes). */
async function extract(layers: TarEntry[][], options = {}) {
  const dir = tempDir();
  const root = join(dir.path, 'root');
  const writer = new RootfsWriter(root, options);
  for (const entries of layers) await writer.applyLayer(layer(entries));
  await writer.finish();
  return { dir, root };
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
  const cases: Array<[string, (outside: string) => TarEntry[][]]> = [
    ['a ../ path', (outside) => [[{ type: 'file', name: '../escape', content: 'x' }]]],
    ['a nested ../ path', (outside) => [[{ type: 'file', name: 'a/../../escape', content: 'x' }]]],
    ['an absolute path', (outside) => [[{ type: 'file', name: `${outside}/escape`, content: 'x' }]]],
    ['writing through an absolute symlink', (outside) => [[{ type: 'symlink', name: 'link', target: outside }, { type: 'file', name: 'link/escape', content: 'x' }]]],
    ['writing through a relative symlink that climbs out', (outside) => [[{ type: 'symlink', name: 'link', target: '../..' }, { type: 'file', name: 'link/escape', content: 'x' }]]],
    ['a symlink planted in one layer, written through in the next', (outside) => [[{ type: 'symlink', name: 'link', target: '..' }], [{ type: 'file', name: 'link/escape', content: 'x' }]]],
    ['a chain of symlinks leading out', (outside) => [[{ type: 'symlink', name: 'one', target: 'two' }, { type: 'symlink', name: 'two', target: '../' }, { type: 'file', name: 'one/escape', content: 'x' }]]],
    ['a hardlink to outside', (outside) => [[{ type: 'hardlink', name: 'hl', target: '../outside.txt' }]]],
    ['a hardlink to an absolute path', (outside) => [[{ type: 'hardlink', name: 'hl', target: '/etc/passwd' }]]],
    ['a hardlink through an escaping symlink', (outside) => [[{ type: 'symlink', name: 'up', target: '..' }, { type: 'hardlink', name: 'hl', target: 'up/outside.txt' }]]],
    ['a whiteout with ..', (outside) => [[{ type: 'file', name: '../.wh.outside.txt', content: '' }]]],
  ];
  for (const [what, makeLayers] of cases) {
    it(`refuses ${what}`, async () => {
      using dir = tempDir();
      const outside = join(dir.path, 'outside.txt');
      writeFileSync(outside, 'precious');
      mkdirSync(join(dir.path, 'root'));
      const writer = new RootfsWriter(join(dir.path, 'root'));
      const attempt = (async () => {
        for (const entries of makeLayers(dir.path)) await writer.applyLayer(layer(entries));
      })();
      await assert.rejects(attempt, (e: unknown) => e instanceof ExtractionError && /refusing layer entry/.test(e.message));
      assert.equal(readFileSync(outside, 'utf8'), 'precious');
      assert.deepEqual(readdirSync(dir.path).sort(), ['outside.txt', 'root'], 'nothing created next to the root');
    });
  }

  it('refuses a truncated archive', async () => {
    using dir = tempDir();
    const raw = tar([{ type: 'file', name: 'big', content: Buffer.alloc(4096, 1) }]).subarray(0, 1500);
    await assert.rejects(new RootfsWriter(join(dir.path, 'root')).applyLayer(Readable.from([raw])), ExtractionError);
  });
});
