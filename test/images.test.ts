/**
 * pullImage and extractImage against real skopeo and real OCI layouts:
 * parallel fetch with strictly ordered apply (a whiteout in a small layer
 * that arrives first still deletes what the big layer before it wrote), the
 * event sequences, blobs already present not fetched again (and a damaged
 * one fetched again), cancellation leaving no temporary files, and a pull or
 * an extraction SIGKILLed at random moments and then resumed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { BlobVerificationError, ExtractionError, extractImage, ImageProxy, pullImage, type Descriptor, type ImageManifest, type ImageProgressEvent } from '../src/index.js';
import { baseConfig, skopeo, tempDir } from './support/env.js';
import { FaultRelay } from './support/fault-relay.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { buildImage, noise, sha256, type BuiltImage } from './support/oci-layout.js';
import { snapshot, assertSameTree as assertSameTreeAll, type Snapshot } from './support/tree.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'support', 'image-child.js');
const scratch = tempDir('cip-images-test-');
let proxy: ImageProxy;
/** Layer 0 is big; layer 1 is tiny and whites out a file of layer 0; 2 and 3 are small. */
let image: BuiltImage;
let other: BuiltImage;
/** The root filesystem of `image`, extracted with jobs 1 (no layer ever waits). */
let expected: Snapshot;

before(async () => {
  image = buildImage(join(scratch.path, 'source'), 'v1', [
    {
      compression: 'none',
      entries: [
        { type: 'dir', name: 'etc/' },
        { type: 'file', name: 'etc/victim', content: 'layer 0 wrote me; layer 1 deletes me\n' },
        { type: 'file', name: 'big.bin', content: noise(6 * 1024 * 1024, 3) },
      ],
    },
    { entries: [{ type: 'dir', name: 'etc/' }, { type: 'file', name: 'etc/.wh.victim', content: '' }, { type: 'file', name: 'etc/one', content: '1\n' }] },
    { entries: [{ type: 'file', name: 'two.bin', content: noise(200_000, 4) }] },
    { entries: [{ type: 'dir', name: 'etc/', mode: 0o750 }, { type: 'file', name: 'three.bin', content: noise(700_000, 5) }] },
  ]);
  other = buildImage(join(scratch.path, 'source'), 'other', [{ entries: [{ type: 'file', name: 'other', content: 'x\n' }] }]);
  proxy = await ImageProxy.spawn(baseConfig());
  const reference = join(scratch.path, 'expected');
  await extractImage(proxy, image.reference, reference, { jobs: 1 });
  expected = snapshot(reference);
});

after(async () => {
  await proxy?.close();
  scratch[Symbol.dispose]();
});

/** The image has no entry for its root, so the root's mtime is when it was made. */
function assertSameTree(actual: Snapshot, wanted: Snapshot, what: string): void {
  assertSameTreeAll(actual, wanted, what, { ignore: (rel) => (rel === '' ? ['mtimeNs'] : []) });
}

/** Runs `work` with an onProgress that records every event. */
async function recording<T>(work: (onProgress: (event: ImageProgressEvent) => void) => Promise<T>): Promise<{ result: T; events: ImageProgressEvent[] }> {
  const events: ImageProgressEvent[] = [];
  const result = await work((event) => events.push(event));
  return { result, events };
}

/** Checks the per-blob grammar: each blob of `resolved` gets blob-skipped, or blob-start (blob-progress)* blob-done. */
function assertEventGrammar(events: ImageProgressEvent[]): void {
  assert.equal(events[0]?.type, 'resolved', 'resolved comes first');
  assert.equal(events.at(-1)?.type, 'done', 'done comes last');
  const resolved = events[0];
  assert.equal(resolved.type, 'resolved');
  assert.equal(resolved.totalBytes, resolved.blobs.reduce((sum, blob) => sum + blob.size, 0));
  for (const blob of resolved.blobs) {
    const own = events.filter((e) => 'digest' in e && e.digest === blob.digest && e.type !== 'layer-applied').map((e) => e.type);
    const grammar = own.join(' ');
    assert.match(grammar, /^(blob-skipped|blob-start( blob-progress)*( blob-retry blob-start( blob-progress)*)* blob-done)$/, `${String(blob.role)}: ${grammar}`);
    const done = events.find((e) => e.type === 'blob-done' && e.digest === blob.digest);
    if (done?.type === 'blob-done') assert.equal(done.bytes, blob.size, 'blob-done counts every byte');
  }
}

/** Every blob index.json's tag leads to is there and hashes to its digest; no temporary file is left. */
function assertLayoutVerified(layout: string, tag: string): void {
  const check = (digest: string, size?: number): Buffer => {
    const data = readFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)));
    assert.equal('sha256:' + createHash('sha256').update(data).digest('hex'), digest);
    if (size !== undefined) assert.equal(data.length, size);
    return data;
  };
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; size: number; annotations?: Record<string, string> }> };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(entry, `tag ${tag} is in index.json`);
  const manifest = JSON.parse(check(entry.digest, entry.size).toString()) as { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> };
  for (const blob of [manifest.config, ...manifest.layers]) check(blob.digest, blob.size);
  assert.deepEqual(temporaries(layout), [], 'no temporary file is left');
}

/** The `.partial-` files under a layout. */
function temporaries(layout: string): string[] {
  const under = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).filter((name) => name.includes('.partial-')) : []);
  return [...under(layout), ...under(join(layout, 'blobs', 'sha256'))];
}

/** Leftover spool directories of extractImage in `parent`. */
function spools(parent: string): string[] {
  return readdirSync(parent).filter((name) => name.startsWith('.cip-spool-'));
}

describe('extractImage', () => {
  it('into a directory a previous run finished for the same image: a no-op; another image is refused', async () => {
    using dir = tempDir();
    const root = join(dir.path, 'root');
    await extractImage(proxy, image.reference, root, { jobs: 2 });
    const { result, events } = await recording((onProgress) => extractImage(proxy, image.reference, root, { onProgress }));
    assert.equal(result.alreadyComplete, true);
    assert.deepEqual(events.map((e) => e.type), ['resolved', 'blob-skipped', 'blob-skipped', 'blob-skipped', 'blob-skipped', 'done']);
    assert.ok(events.every((e) => e.type !== 'blob-skipped' || e.reason === 'applied'));
    assert.ok(result.layers.every((l) => !l.applied));
    assertSameTree(snapshot(root), expected, 'untouched');
    await assert.rejects(extractImage(proxy, other.reference, root), (error: unknown) => error instanceof ExtractionError && /is not empty/.test(error.message));
  });

  it('stops on abort mid-layer, leaving no spool; the next run carries on and finishes the same tree', async () => {
    using dir = tempDir();
    const root = join(dir.path, 'root');
    const controller = new AbortController();
    await assert.rejects(
      extractImage(proxy, image.reference, root, {
        jobs: 2,
        progressInterval: 0,
        onProgress: (event) => {
          if (event.type === 'blob-progress' && event.role === 0 && event.bytes > 1024 * 1024) controller.abort();
        },
        signal: controller.signal,
      }),
      { name: 'AbortError' },
    );
    assert.deepEqual(spools(dir.path), []);
    assert.ok(proxy.running, 'the proxy stays usable');
    const { events } = await recording((onProgress) => extractImage(proxy, image.reference, root, { onProgress }));
    assertEventGrammar(events);
    assertSameTree(snapshot(root), expected, 'resumed');
  });
});

describe('from a registry, through a relay that drips the big layer', () => {
  let registry: TestRegistry;
  let relay: FaultRelay;
  /** The layers as the registry stores them (skopeo compresses them when pushing). */
  let pushed: Descriptor[];
  const reference = (): string => `docker://${relay.host}/images/app:v1`;
  const config = baseConfig({ insecureSkipTlsVerification: true });

  before(async () => {
    registry = await startRegistry();
    relay = await FaultRelay.start(registry.port);
    await registry.push(image.reference, 'images/app:v1');
    pushed = (JSON.parse((await registry.rawManifest('images/app:v1')).toString('utf8')) as ImageManifest).layers;
  });

  after(async () => {
    await relay?.stop();
    await registry?.stop();
  });

  it('fetches in parallel and applies in order: a small layer that arrives first waits for the big one before it', async () => {
    using dir = tempDir();
    const root = join(dir.path, 'root');
    // Layer 0 takes about half a second; the others come at once.
    relay.inject(new RegExp(`/blobs/${pushed[0]!.digest}$`), { kind: 'drip', chunkBytes: 512 * 1024, intervalMs: 40 });
    const { result, events } = await recording((onProgress) => extractImage(config, reference(), root, { jobs: 4, onProgress }));
    assertEventGrammar(events);
    const at = (type: string, index: number): number => events.findIndex((e) => e.type === type && ((e.type === 'layer-applied' && e.index === index) || ('role' in e && e.role === index)));
    assert.ok(at('blob-start', 1) < at('blob-done', 0), 'layer 1 was fetched while layer 0 was');
    assert.ok(at('blob-done', 1) < at('layer-applied', 0), 'layer 1 was whole before layer 0 was applied');
    assert.deepEqual(events.filter((e) => e.type === 'layer-applied').map((e) => (e.type === 'layer-applied' ? e.index : -1)), [0, 1, 2, 3], 'applied in image order');
    assert.ok(!existsSync(join(root, 'etc', 'victim')), "layer 1's whiteout came after layer 0's file");
    assertSameTree(snapshot(root), expected, 'jobs 4 from the registry vs jobs 1 from the layout');
    assert.deepEqual(result.layers.map((l) => [l.index, l.diffId, l.applied]), image.layers.map((l, i) => [i, l.diffId, true]));
    assert.deepEqual(spools(dir.path), [], 'the spool is gone');
  });

  it('holds at most `jobs` layers between fetch start and apply, so the spool never outgrows the layers in flight', async () => {
    using dir = tempDir();
    const root = join(dir.path, 'root');
    // Layer 0 takes about half a second: without the bound, layers 1-3 would all be fetched and spooled meanwhile.
    relay.inject(new RegExp(`/blobs/${pushed[0]!.digest}$`), { kind: 'drip', chunkBytes: 512 * 1024, intervalMs: 40 });
    const jobs = 2;
    let most = 0;
    const pending = new Set<number>();
    const { events } = await recording((onProgress) =>
      extractImage(config, reference(), root, {
        jobs,
        onProgress: (event) => {
          if (event.type === 'blob-start' && typeof event.role === 'number') pending.add(event.role);
          if (event.type === 'layer-applied') pending.delete(event.index);
          most = Math.max(most, pending.size);
          onProgress(event);
        },
      }),
    );
    assertEventGrammar(events);
    assert.equal(most, jobs, `at most ${jobs} layers were started and not yet applied`);
    assert.deepEqual(events.filter((e) => e.type === 'layer-applied').map((e) => (e.type === 'layer-applied' ? e.index : -1)), [0, 1, 2, 3], 'applied in image order');
    assertSameTree(snapshot(root), expected, 'jobs 2, bounded');
    assert.deepEqual(spools(dir.path), []);
  });

  it('fails with the broken layer while a fetched layer waits for its turn, leaving no spool', { timeout: 60_000 }, async () => {
    using dir = tempDir();
    const root = join(dir.path, 'root');
    // jobs 2: layer 3 arrives and waits for 0, 1 and 2; layer 2 is corrupt.
    relay.inject(new RegExp(`/blobs/${pushed[0]!.digest}$`), { kind: 'drip', chunkBytes: 512 * 1024, intervalMs: 40 });
    relay.inject(new RegExp(`/blobs/${pushed[2]!.digest}$`), { kind: 'corrupt', atByte: 100 });
    const events: ImageProgressEvent[] = [];
    // Applied straight from the wire, the damage shows first as a broken tar, before the digest check at the end.
    await assert.rejects(
      extractImage(config, reference(), root, { jobs: 2, onProgress: (event) => events.push(event) }),
      (error: unknown) => error instanceof ExtractionError || error instanceof BlobVerificationError,
    );
    assert.ok(events.some((e) => e.type === 'blob-done' && e.role === 3), 'layer 3 was whole and waiting when layer 2 failed');
    assert.ok(!events.some((e) => e.type === 'layer-applied' && e.index === 3), 'layer 3 was never applied');
    assert.deepEqual(spools(dir.path), [], 'the waiting layer left no spool');
  });

  it('applies a spooled layer whose turn comes while it still arrives, as it arrives', async () => {
    using dir = tempDir();
    const root = join(dir.path, 'root');
    // Layer 3 is fetched early (it is the largest after layer 0) and dripped: layers 0-2 are applied before it is whole.
    relay.inject(new RegExp(`/blobs/${pushed[3]!.digest}$`), { kind: 'drip', chunkBytes: 64 * 1024, intervalMs: 40 });
    const { events } = await recording((onProgress) => extractImage(config, reference(), root, { jobs: 4, onProgress }));
    assertEventGrammar(events);
    const at = (type: string, index: number): number => events.findIndex((e) => e.type === type && ((e.type === 'layer-applied' && e.index === index) || ('role' in e && e.role === index)));
    assert.ok(at('layer-applied', 2) < at('blob-done', 3), 'its turn came while it was arriving');
    assert.ok(at('blob-done', 3) < at('layer-applied', 3));
    assertSameTree(snapshot(root), expected, 'followed spool');
    assert.deepEqual(spools(dir.path), []);
  });

  it('pulls with a blob that stalls mid-transfer: blob-retry after stallTimeout, then the layout verifies', async () => {
    using dir = tempDir();
    const layout = join(dir.path, 'layout');
    relay.inject(new RegExp(`/blobs/${pushed[2]!.digest}$`), { kind: 'stall', afterBytes: 50_000 });
    const stalling = baseConfig({ insecureSkipTlsVerification: true, stallTimeout: 1500 });
    const { result, events } = await recording((onProgress) =>
      pullImage(stalling, reference(), layout, { tag: 'v1', stallTimeout: 1500, retry: { attempts: 2, backoff: 10 }, onProgress }),
    );
    relay.releaseStalled();
    assertEventGrammar(events);
    const retry = events.find((e) => e.type === 'blob-retry');
    assert.ok(retry?.type === 'blob-retry' && retry.role === 2 && retry.attempt === 2, 'layer 2 was retried');
    assert.equal(result.sourceDigest, sha256(await registry.rawManifest('images/app:v1')));
    assertLayoutVerified(layout, 'v1');
  });
});

describe('pullImage', () => {
  it('reports each blob once, then skips what the layout holds, and fetches a damaged blob again', async () => {
    using dir = tempDir();
    const layout = join(dir.path, 'layout');
    const first = await recording((onProgress) => pullImage(baseConfig(), image.reference, layout, { tag: 'v1', onProgress, progressInterval: 0 }));
    assertEventGrammar(first.events);
    const resolved = first.events[0]!;
    assert.ok(resolved.type === 'resolved');
    assert.deepEqual(resolved.blobs.map((b) => b.role), ['config', 0, 1, 2, 3]);
    assert.ok(first.events.some((e) => e.type === 'blob-progress' && e.role === 0 && e.bytes < e.size), 'progress within the big layer');
    assert.equal(first.result.manifestDigest, image.manifestDigest, 'an OCI source is copied as it is');
    assertLayoutVerified(layout, 'v1');

    const second = await recording((onProgress) => pullImage(proxy, image.reference, layout, { tag: 'v1', onProgress }));
    assert.deepEqual(second.events.map((e) => e.type), ['resolved', ...Array(5).fill('blob-skipped'), 'done']);
    const done = second.events.at(-1)!;
    assert.ok(done.type === 'done' && done.fetched === 0 && done.fetchedBytes === 0 && done.skipped === 5);
    assert.ok(second.result.blobs.every((b) => !b.fetched));

    // Same size, one byte flipped: only a digest check notices.
    const damaged = join(layout, 'blobs', 'sha256', image.layers[2]!.digest.slice(7));
    const bytes = readFileSync(damaged);
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(damaged, bytes);
    const third = await recording((onProgress) => pullImage(proxy, image.reference, layout, { tag: 'v1', onProgress }));
    assertEventGrammar(third.events);
    assert.deepEqual(third.events.filter((e) => e.type === 'blob-done').map((e) => (e.type === 'blob-done' ? e.role : null)), [2]);
    assertLayoutVerified(layout, 'v1');
    assert.ok(JSON.parse(skopeo('inspect', `oci:${layout}:v1`)), 'skopeo reads the layout');
  });

  it('stops on abort mid-blob with no temporary file left, and the proxy stays usable', async () => {
    using dir = tempDir();
    const layout = join(dir.path, 'layout');
    const controller = new AbortController();
    await assert.rejects(
      pullImage(proxy, image.reference, layout, {
        progressInterval: 0,
        signal: controller.signal,
        onProgress: (event) => {
          if (event.type === 'blob-progress' && event.role === 0) controller.abort();
        },
      }),
      { name: 'AbortError' },
    );
    assert.deepEqual(temporaries(layout), []);
    assert.ok(!existsSync(join(layout, 'blobs', 'sha256', image.layers[0]!.digest.slice(7))), 'the aborted blob is not in place');
    await pullImage(proxy, image.reference, layout, { tag: 'v1' });
    assertLayoutVerified(layout, 'v1');
  });
});

/** Deterministic trial moments (xorshift32, fixed seed). */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/**
 * Runs the child on `what` and SIGKILLs it once it has printed `killAfter`
 * events (0: as soon as it starts); resolves with the events it printed.
 */
function runAndKill(what: 'pull' | 'extract', dir: string, killAfter: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, what, image.reference, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const seen: string[] = [];
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    if (killAfter === 0) child.kill('SIGKILL');
    createInterface({ input: child.stdout }).on('line', (line) => {
      seen.push(line);
      if (seen.length === killAfter) child.kill('SIGKILL');
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (signal === 'SIGKILL' || code === 0) resolve(seen);
      else reject(new Error(`the child failed (${code}): ${stderr}`));
    });
  });
}

describe('resume after SIGKILL', () => {
  it('a pull killed at 20 random moments leaves only temporary files; the next one fetches only what is missing', async () => {
    using dir = tempDir();
    const next = random(12);
    // How many events a whole run prints (the child asks for the same ones).
    const { events: whole } = await recording((onProgress) => pullImage(proxy, image.reference, join(dir.path, 'count'), { jobs: 3, progressInterval: 0, onProgress }));
    const trial = async (n: number): Promise<void> => {
      const layout = join(dir.path, `t${n}`);
      const killAfter = Math.floor(next() * whole.length);
      await runAndKill('pull', layout, killAfter);
      // What the killed pull left: verified blobs in place, anything else a temporary file.
      const complete = new Set<string>();
      for (const name of existsSync(join(layout, 'blobs', 'sha256')) ? readdirSync(join(layout, 'blobs', 'sha256')) : []) {
        if (name.includes('.partial-')) continue;
        const data = readFileSync(join(layout, 'blobs', 'sha256', name));
        assert.equal(createHash('sha256').update(data).digest('hex'), name, `trial ${n} (killed after ${killAfter} events): ${name} is whole`);
        complete.add(`sha256:${name}`);
      }
      const { events } = await recording((onProgress) => pullImage(proxy, image.reference, layout, { tag: 'v1', onProgress }));
      assertEventGrammar(events);
      const fetched = events.filter((e) => e.type === 'blob-start').map((e) => (e.type === 'blob-start' ? e.digest : ''));
      assert.deepEqual(fetched.filter((digest) => complete.has(digest)), [], `trial ${n}: nothing fetched twice`);
      assertLayoutVerified(layout, 'v1');
    };
    // Two at a time: most of a trial is a process starting.
    for (let n = 0; n < 20; n += 2) await Promise.all([trial(n), trial(n + 1)]);
    // One independent check: skopeo verifies every digest while copying.
    skopeo('copy', '--quiet', `oci:${join(dir.path, 't19')}:v1`, `dir:${join(dir.path, 'copy')}`);
  });

  it('an extraction killed at random moments carries on to the same tree', async () => {
    using dir = tempDir();
    const next = random(34);
    const { events: whole } = await recording((onProgress) => extractImage(proxy, image.reference, join(dir.path, 'count'), { jobs: 3, progressInterval: 0, onProgress }));
    const trial = async (n: number): Promise<void> => {
      const root = join(dir.path, `t${n}`);
      await runAndKill('extract', root, 1 + Math.floor(next() * (whole.length - 1)));
      await extractImage(proxy, image.reference, root);
      assertSameTree(snapshot(root), expected, `trial ${n}`);
    };
    for (let n = 0; n < 6; n += 2) await Promise.all([trial(n), trial(n + 1)]);
    assert.deepEqual(spools(dir.path), [], "the dead runs' spools were removed");
  });
});
