/**
 * How RootfsWriter resolves the directories of an entry's path inside the
 * root: symlinks followed inside it (relative ones from their own directory,
 * absolute ones from the root, `.`, empty and `..` components), a bounded
 * number of symlinks, and a regular file on the way refused by name.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { ExtractionError, RootfsWriter } from '../../src/index.js';
import { tempDir } from '../support/env.js';
import { tar, type TarEntry } from '../support/tar.js';

/** Applies one layer into <tmp>/root; the tmp dir is the root's parent, so escapes show. */
async function extract(entries: TarEntry[]): Promise<{ dir: { path: string; [Symbol.dispose](): void }; root: string }> {
  const dir = tempDir();
  const root = join(dir.path, 'root');
  const writer = new RootfsWriter(root);
  await writer.applyLayer(Readable.from([tar(entries)]));
  await writer.finish();
  return { dir, root };
}

async function refusal(entries: TarEntry[]): Promise<ExtractionError> {
  using dir = tempDir();
  const writer = new RootfsWriter(join(dir.path, 'root'));
  const error = await writer.applyLayer(Readable.from([tar(entries)])).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(error instanceof ExtractionError, String(error));
  assert.deepEqual(readdirSync(dir.path), ['root'], 'nothing next to the root');
  return error;
}

const file = (name: string, content = 'x'): TarEntry => ({ type: 'file', name, content });
const dirEntry = (name: string): TarEntry => ({ type: 'dir', name });
const link = (name: string, target: string): TarEntry => ({ type: 'symlink', name, target });

describe('RootfsWriter: resolving directories through symlinks', () => {
  it('follows an absolute symlink from the root, even when the link sits deeper', async () => {
    const { dir, root } = await extract([dirEntry('etc/'), dirEntry('a/'), link('a/link', '/etc'), file('a/link/x', 'abs')]);
    using _ = dir;
    assert.equal(readFileSync(join(root, 'etc/x'), 'utf8'), 'abs');
    assert.equal(existsSync(join(root, 'a/etc')), false);
  });

  it('follows a relative symlink from its own directory', async () => {
    const { dir, root } = await extract([dirEntry('a/'), dirEntry('a/d/'), link('a/link', 'd'), file('a/link/x', 'rel')]);
    using _ = dir;
    assert.equal(readFileSync(join(root, 'a/d/x'), 'utf8'), 'rel');
    assert.equal(existsSync(join(root, 'd')), false);
  });

  it('skips "." and empty components of a target', async () => {
    const { dir, root } = await extract([
      dirEntry('d/'),
      dirEntry('d/sub/'),
      dirEntry('o/'),
      link('l', './d//sub/.'),
      link('dot', 'd/./../o'), // d, then up from d: the root
      link('empty', 'd//../o'),
      file('l/x', 'dots'),
      file('dot/y', 'dot'),
      file('empty/z', 'empty'),
    ]);
    using _ = dir;
    assert.equal(readFileSync(join(root, 'd/sub/x'), 'utf8'), 'dots');
    assert.equal(readFileSync(join(root, 'o/y'), 'utf8'), 'dot');
    assert.equal(readFileSync(join(root, 'o/z'), 'utf8'), 'empty');
    assert.deepEqual(readdirSync(root).sort(), ['d', 'dot', 'empty', 'l', 'o']);
    assert.deepEqual(readdirSync(join(root, 'd')), ['sub']);
  });

  it('climbs ".." one directory at a time, and stops at the root', async () => {
    const { dir, root } = await extract([
      dirEntry('app/'),
      dirEntry('app/b/'),
      dirEntry('app/c/'),
      dirEntry('o/'),
      link('app/b/up', '../c'), // app/b -> app -> app/c
      link('app/top', '../o'), // app -> the root -> o
      link('app/b/far', '../../../../o'), // past the root: stays at the root
      file('app/b/up/x', 'one'),
      file('app/top/y', 'two'),
      file('app/b/far/z', 'three'),
    ]);
    using _ = dir;
    assert.equal(readFileSync(join(root, 'app/c/x'), 'utf8'), 'one');
    assert.equal(readFileSync(join(root, 'o/y'), 'utf8'), 'two');
    assert.equal(readFileSync(join(root, 'o/z'), 'utf8'), 'three');
    assert.deepEqual(readdirSync(dir.path), ['root']);
  });

  it('follows a chain of 255 symlinks, and refuses 256 or a loop', async () => {
    const chain = (links: number): TarEntry[] => [
      dirEntry('end/'),
      ...Array.from({ length: links }, (_, i) => link(`c${i}`, i === links - 1 ? 'end' : `c${i + 1}`)),
      file('c0/x', 'far'),
    ];
    const { dir, root } = await extract(chain(255));
    using _ = dir;
    assert.equal(readFileSync(join(root, 'end/x'), 'utf8'), 'far');
    const tooMany = await refusal(chain(256));
    assert.match(tooMany.message, /more than 255 symlinks on the way/);
    const loop = await refusal([link('l1', 'l2'), link('l2', 'l1'), file('l1/x')]);
    assert.match(loop.message, /more than 255 symlinks on the way/);
  });

  it('never mistakes one path for another in its cache of resolved directories (a/b and ab, a dir looked up before it existed)', async () => {
    // a/b then ab, and ab then a/b: joined without a separator the two are one key.
    const { dir, root } = await extract([file('a/b/x', 'in a/b'), file('ab/y', 'in ab'), file('cd/y', 'in cd'), file('c/d/x', 'in c/d')]);
    using _ = dir;
    assert.equal(readFileSync(join(root, 'ab/y'), 'utf8'), 'in ab');
    assert.equal(readFileSync(join(root, 'c/d/x'), 'utf8'), 'in c/d');
    assert.deepEqual(readdirSync(join(root, 'a/b')), ['x']);
    assert.deepEqual(readdirSync(join(root, 'cd')), ['y']);
    // A whiteout below a directory that does not exist yet looks it up (and finds
    // nothing) after the cache was emptied (a symlink removed); a later entry in
    // that directory must land in it, not in its parent.
    const { dir: dir2, root: root2 } = await extract([file('p/x'), link('s', 'p'), file('.wh.s', ''), file('p/later/.wh.gone', ''), file('p/later/f', 'f')]);
    using __ = dir2;
    assert.equal(readFileSync(join(root2, 'p/later/f'), 'utf8'), 'f');
    assert.deepEqual(readdirSync(join(root2, 'p')).sort(), ['later', 'x']);
  });

  it('refuses an entry below a regular file, naming the file', async () => {
    const error = await refusal([file('a'), file('a/b')]);
    assert.equal(error.message, '"a/b": "a" is not a directory, so the entry has no place to go');
    // The cause, for whoever reads the stack: which component, in the resolver's words.
    assert.ok(error.cause instanceof Error);
    assert.equal(error.cause.name, 'NotADirectoryError');
    assert.equal(error.cause.message, 'a is not a directory');
    const through = await refusal([dirEntry('d/'), file('d/f'), link('l', 'd/f'), file('l/b')]);
    assert.equal(through.message, '"l/b": "d/f" is not a directory, so the entry has no place to go');
  });
});
