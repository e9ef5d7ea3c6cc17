/**
 * The parts of pullImage and extractImage that need no proxy: option
 * checks, the fetch order, layer selection, the state file, and the
 * progress reporter.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { extractImage, InvalidArgumentError, pullImage, SpawnError, type ImageProgressEvent } from '../../src/index.js';
import { selectLayers } from '../../src/extract-image.js';
import { defaultStatePath, readState, sameLayers, writeState } from '../../src/extract/extract-state.js';
import { ProgressReporter } from '../../src/image-events.js';
import { imageCall, largestFirst, runJobs } from '../../src/image-session.js';
import { tempDir } from '../support/env.js';

const layer = (digest: string, size: number) => ({ digest, size, mediaType: 'application/vnd.oci.image.layer.v1.tar', diffId: `sha256:${digest.slice(-1).repeat(64)}` });

describe('image options', () => {
  it('refuses bad jobs, retry and progress options before spawning anything, naming the option', async () => {
    for (const [options, name] of [
      [{ jobs: 0 }, /jobs/],
      [{ jobs: 1.5 }, /jobs/],
      [{ retry: { attempts: 0 } }, /retry\.attempts/],
      [{ progressInterval: -1 }, /progressInterval/],
      [{ onProgress: 'yes' }, /onProgress/],
    ] as const) {
      assert.throws(() => imageCall(options as never), (error: unknown) => error instanceof InvalidArgumentError && name.test(error.message));
      // The public calls reject the same way, with a config that would spawn a missing skopeo.
      await assert.rejects(pullImage({ skopeoCommand: ['/nonexistent/skopeo'] }, 'oci:x', null, options as never), InvalidArgumentError);
      await assert.rejects(extractImage({ skopeoCommand: ['/nonexistent/skopeo'] }, 'oci:x', '/nonexistent/dir', options as never), InvalidArgumentError);
    }
    await assert.rejects(pullImage({ skopeoCommand: ['/nonexistent/skopeo'] }, 'oci:x', null, { tag: 'not a tag' }), /not a valid tag/);
  });

  it('extractImage refuses a dir that is not a path before spawning anything, and takes one that is', async () => {
    const missing = { skopeoCommand: ['/nonexistent/skopeo'] };
    for (const [dir, shown] of [
      ['', ''],
      [42, '42'],
      [undefined, 'undefined'],
    ] as const) {
      await assert.rejects(extractImage(missing, 'oci:x', dir as never), (error: unknown) => error instanceof InvalidArgumentError && error.message === `dir must be a directory path, got ${shown}`);
    }
    // A path passes the check: the missing skopeo is what fails.
    for (const dir of ['/nonexistent/dir', 'relative', ' a name with spaces! ']) {
      await assert.rejects(extractImage(missing, 'oci:x', dir), (error: unknown) => error instanceof SpawnError, dir);
    }
  });

  it('fetches the largest first, unknown sizes last, ties in image order', () => {
    assert.deepEqual(largestFirst([{ size: 5 }, { size: 50 }, { size: -1 }, { size: 50 }, { size: 7 }]), [1, 3, 4, 0, 2]);
  });

  it('runJobs: at most `jobs` at once, and the first failure stops new work after everything settles', async () => {
    let running = 0;
    let peak = 0;
    const order = [0, 1, 2, 3, 4, 5];
    await runJobs(6, 2, undefined, () => order.shift(), async () => {
      peak = Math.max(peak, ++running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
    });
    assert.equal(peak, 2);
    const started: number[] = [];
    const items = [0, 1, 2, 3];
    await assert.rejects(
      runJobs(4, 1, undefined, () => items.shift(), async (item) => {
        started.push(item);
        if (item === 1) throw new Error('boom');
      }),
      /boom/,
    );
    assert.deepEqual(started, [0, 1]);
  });
});

describe('layer selection', () => {
  const layers = [layer('sha256:a', 1), layer('sha256:b', 2), layer('sha256:c', 3)];
  it('by index or digest, in image order, each once', () => {
    assert.deepEqual(selectLayers(layers, [2, 'sha256:a', 0]).map((l) => l.index), [0, 2]);
    assert.equal(selectLayers(layers, undefined).length, 3);
  });
  it('refuses what names no layer', () => {
    for (const bad of [[3], [-1], ['sha256:z'], [1.5]]) {
      assert.throws(() => selectLayers(layers, bad), (error: unknown) => error instanceof InvalidArgumentError && error.message === `layer ${bad[0]}: the image has 3 layers (0-2) and no such digest`);
    }
  });
  it('refuses a selector that is not an array (a string is no list of digests)', () => {
    for (const [bad, shown] of [
      [2, '2'],
      ['sha256:a', 'sha256:a'],
      [{ length: 1, 0: 0 }, '[object Object]'],
    ] as const) {
      assert.throws(() => selectLayers(layers, bad as never), (error: unknown) => error instanceof InvalidArgumentError && error.message === `layers must be an array of layer indexes or digests, got ${shown}`);
    }
  });
});

describe('extract state file', () => {
  it('sits beside the directory, round-trips, and is ignored when it is not ours', async () => {
    using dir = tempDir();
    assert.equal(defaultStatePath(join(dir.path, 'root')), join(dir.path, '.root.extract-state.json'));
    const path = join(dir.path, 'state.json');
    assert.equal(await readState(path), undefined);
    const state = { version: 1 as const, diffIds: ['sha256:1', 'sha256:2'], applied: 1, complete: false, checkpoint: { entries: 3, uncompressedBytes: 10, directories: [['etc', 0o755, 1, 2]] as Array<[string, number, number, number]>, skippedXattrs: [] } };
    await writeState(path, state);
    const read = await readState(path);
    assert.deepEqual(read, state);
    assert.ok(sameLayers(read!, ['sha256:1', 'sha256:2']));
    assert.ok(!sameLayers(read!, ['sha256:1']));
    assert.ok(!sameLayers(read!, ['sha256:2', 'sha256:1']));
    assert.ok(!sameLayers(read!, ['sha256:1', 'sha256:2', 'sha256:3']), 'a longer list');
    assert.ok(!sameLayers(read!, ['sha256:1', 'sha256:3']), 'one differs');
    const broken = [
      'not json',
      '{}',
      { ...state, applied: 3 },
      { ...state, applied: -1 },
      { ...state, version: 2 },
      { ...state, diffIds: ['sha256:1', 2] },
      { ...state, complete: 'no' },
      { ...state, checkpoint: null },
      { ...state, checkpoint: 'x' },
    ];
    for (const value of broken) {
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      writeFileSync(path, text);
      assert.equal(await readState(path), undefined, text);
    }
    // The edges of `applied`: none and all are valid.
    for (const applied of [0, 2]) {
      writeFileSync(path, JSON.stringify({ ...state, applied }));
      assert.equal((await readState(path))?.applied, applied);
    }
  });

  it('never writes through a name planted where its temporary file goes: a symlink there fails the write, its target untouched', async () => {
    using dir = tempDir();
    const path = join(dir.path, 'state.json');
    const victim = join(dir.path, 'victim');
    writeFileSync(victim, 'not yours');
    // The temporary's name is random: fix it, so that the test can plant a symlink by that name first.
    const crypto = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
    const random = crypto.randomBytes;
    crypto.randomBytes = ((size: number) => Buffer.alloc(size, 0xab)) as typeof crypto.randomBytes;
    syncBuiltinESMExports();
    try {
      const temporary = `${path}.partial-${process.pid}-${'ab'.repeat(4)}`;
      symlinkSync(victim, temporary);
      const state = { version: 1 as const, diffIds: [], applied: 0, complete: false, checkpoint: { entries: 0, uncompressedBytes: 0, directories: [], skippedXattrs: [] } };
      await assert.rejects(writeState(path, state), (error: unknown) => (error as NodeJS.ErrnoException).code === 'EEXIST');
      assert.equal(readFileSync(victim, 'utf8'), 'not yours');
      assert.equal(existsSync(path), false, 'no state file recorded');
    } finally {
      crypto.randomBytes = random;
      syncBuiltinESMExports();
    }
  });

  it('reports a state file it cannot read or write, other than a missing one', async () => {
    using dir = tempDir();
    await assert.rejects(readState(dir.path), (error: unknown) => (error as NodeJS.ErrnoException).code === 'EISDIR');
    await assert.rejects(writeState(join(dir.path, 'missing', 'state.json'), { version: 1, diffIds: [], applied: 0, complete: false, checkpoint: { entries: 0, uncompressedBytes: 0, directories: [], skippedXattrs: [] } }), (error: unknown) => {
      assert.equal((error as NodeJS.ErrnoException).code, 'ENOENT');
      assert.equal((error as NodeJS.ErrnoException).syscall, 'open', 'the write failed, not the clean-up after it');
      return true;
    });
  });
});

describe('progress reporter', () => {
  it('throttles blob-progress per blob and counts what was fetched', async () => {
    const events: ImageProgressEvent[] = [];
    const reporter = new ProgressReporter({ progressInterval: 60_000, onProgress: (event) => void events.push(event) });
    {
      const blob = { digest: 'sha256:a', size: 6, role: 0 };
      const attempt = reporter.attempt(blob, 1);
      async function* chunks() {
        yield Buffer.from('abc');
        yield Buffer.from('def');
      }
      let bytes = 0;
      for await (const chunk of attempt.meter(chunks())) bytes += chunk.length;
      attempt.done();
      reporter.skipped({ digest: 'sha256:b', size: 1, role: 1 }, 'present');
      reporter.done('sha256:m');
      assert.equal(bytes, 6);
    }
    assert.deepEqual(events.map((e) => e.type), ['blob-start', 'blob-progress', 'blob-done', 'blob-skipped', 'done']);
    const done = events.at(-1)!;
    assert.ok(done.type === 'done' && done.fetched === 1 && done.fetchedBytes === 6 && done.skipped === 1);
  });
});
