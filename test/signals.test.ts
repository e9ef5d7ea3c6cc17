/**
 * Every call that takes an AbortSignal obeys it: aborted before the call, it
 * rejects with AbortError; aborted while it waits (in flight at a registry
 * that does not answer, or queued behind a call that waits so), it rejects
 * at once; and the proxy serves the next call either way. Against real
 * skopeo and a real registry; the test fault relay in front of the registry
 * holds requests up.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageProxy, type CallOptions, type ImageManifest, type OpenedImage } from '../src/index.js';
import { baseConfig, eventually, tempDir, watchdog } from './support/env.js';
import { FaultRelay } from './support/fault-relay.js';
import { buildImage, sha256, type BuiltImage } from './support/oci-layout.js';
import { startRegistry, type TestRegistry } from './support/registry.js';

const scratch = tempDir();
let registry: TestRegistry;
let relay: FaultRelay;
let source: BuiltImage;
/** The manifest as the registry serves it. */
let manifest: ImageManifest;

before(async () => {
  registry = await startRegistry();
  relay = await FaultRelay.start(registry.port);
  const layout = join(scratch.path, 'layout');
  source = buildImage(layout, 'v1', [
    { entries: [{ type: 'file', name: 'a.txt', content: 'a\n' }] },
    { compression: 'none', entries: [{ type: 'file', name: 'b.txt', content: 'b\n' }] },
  ]);
  await registry.push(source.reference, 'signals/app:v1');
  await registry.push(buildImage(layout, 'blocker', [{ entries: [{ type: 'file', name: 'c.txt', content: 'c\n' }] }]).reference, 'signals/app:blocker');
  manifest = JSON.parse((await registry.rawManifest('signals/app:v1')).toString('utf8')) as ImageManifest;
});

after(async () => {
  await relay?.stop();
  await registry?.stop();
  scratch[Symbol.dispose]();
});

const ref = (tag: string): string => `docker://${relay.host}/signals/app:${tag}`;
const spawn = (): Promise<ImageProxy> => ImageProxy.spawn(baseConfig({ insecureSkipTlsVerification: true }));
const abortedSignal = (): AbortSignal => AbortSignal.abort();
const isAbort = { name: 'AbortError' };

/** Whether a promise is still pending after `ms`. */
async function pendingAfter(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const marker = Symbol('pending');
  const timer = new Promise((resolve) => setTimeout(() => resolve(marker), ms));
  return (await Promise.race([promise.then(() => null, () => null), timer])) === marker;
}

/**
 * Runs `call` with a signal while the registry withholds `path` (a request
 * `call` itself makes, or a call in front of it: `inFront`), checks it waits,
 * aborts it, and requires AbortError within a second; then lets the registry
 * answer and waits for the call in front to settle.
 */
async function abortWhileWaiting(
  what: string,
  path: RegExp,
  call: (options: CallOptions) => Promise<unknown>,
  inFront?: () => Promise<unknown>,
): Promise<void> {
  relay.inject(path, { kind: 'stall', afterBytes: 0 });
  const asked = relay.count(path);
  const front = inFront?.().catch(() => {});
  try {
    const controller = new AbortController();
    const pending = inFront ? undefined : call({ signal: controller.signal });
    assert.ok(await eventually(() => relay.count(path) > asked, 10_000), `${what}: skopeo asked the registry for ${path}`);
    const attempt = pending ?? call({ signal: controller.signal });
    attempt.catch(() => {}); // judged below
    assert.ok(await pendingAfter(attempt, 300), `${what}: the call waits while the registry does not answer`);
    const aborted = Date.now();
    controller.abort();
    await assert.rejects(watchdog(5_000, `${what} after abort`, attempt), isAbort, `${what}: AbortError`);
    assert.ok(Date.now() - aborted < 1_000, `${what}: rejected ${Date.now() - aborted} ms after the abort, not at once`);
  } finally {
    relay.clear();
    relay.releaseStalled();
    await watchdog(30_000, `${what}: the call in front settles`, front ?? Promise.resolve());
  }
}

/** The config blob of signals/app:v1 at the registry. */
const configPath = (): RegExp => new RegExp(`/blobs/${manifest.config.digest}$`);
/** Holds the proxy up: an openImage whose manifest the registry withholds. */
const blocker = (proxy: ImageProxy) => (): Promise<unknown> => proxy.openImage(ref('blocker'));
const blockerPath = /\/manifests\/blocker$/;

describe('fetchConfigRaw and fetchConfig obey their signal', () => {
  for (const method of ['fetchConfigRaw', 'fetchConfig'] as const) {
    it(`${method}: aborted before, and while the registry withholds the config; the proxy stays usable`, async () => {
      await using proxy = await spawn();
      await using img = await proxy.openImage(ref('v1'));
      const fetch = (options?: CallOptions): Promise<unknown> => proxy[method](img, options);
      await assert.rejects(fetch({ signal: abortedSignal() }), isAbort);
      await abortWhileWaiting(method, configPath(), fetch);
      const config = await proxy.fetchConfigRaw(img);
      assert.equal(sha256(config), manifest.config.digest, 'the proxy still serves the config');
    });
  }
});

describe('getLayerInfo obeys its signal', () => {
  it('aborted before, and while queued behind a call the registry holds up; the proxy stays usable', async () => {
    await using proxy = await spawn();
    await using img = await proxy.openImage(ref('v1'));
    await assert.rejects(proxy.getLayerInfo(img, { signal: abortedSignal() }), isAbort);
    await abortWhileWaiting('getLayerInfo', blockerPath, (options) => proxy.getLayerInfo(img, options), blocker(proxy));
    assert.deepEqual((await proxy.getLayerInfo(img)).map((layer) => layer.digest), manifest.layers.map((layer) => layer.digest));
  });
});

describe('getLayerDiffIds obeys its signal', () => {
  it('aborted before, queued, and while it fetches the config; the proxy stays usable', async () => {
    await using proxy = await spawn();
    await using img = await proxy.openImage(ref('v1'));
    await assert.rejects(proxy.getLayerDiffIds(img, { signal: abortedSignal() }), isAbort);
    await abortWhileWaiting('getLayerDiffIds (queued)', blockerPath, (options) => proxy.getLayerDiffIds(img, options), blocker(proxy));
    // The layers come from the manifest; the diff_ids need the config, which the registry now withholds.
    await abortWhileWaiting('getLayerDiffIds (config)', configPath(), (options) => proxy.getLayerDiffIds(img, options));
    assert.deepEqual((await proxy.getLayerDiffIds(img)).map((layer) => layer.diffId), source.layers.map((layer) => layer.diffId));
  });
});

describe('openImageOptional obeys its signal', () => {
  it('aborted before, and while the registry withholds the manifest; the proxy stays usable', async () => {
    await using proxy = await spawn();
    await assert.rejects(proxy.openImageOptional(ref('v1'), { signal: abortedSignal() }), isAbort);
    await abortWhileWaiting('openImageOptional', /\/manifests\/v1$/, (options) => proxy.openImageOptional(ref('v1'), options));
    const img = await proxy.openImageOptional(ref('v1'));
    assert.ok(img, 'the image opens');
    assert.equal((await proxy.fetchManifest(img)).manifest.config.digest, manifest.config.digest);
    await img.close();
  });
});

describe('closeImage obeys its signal', () => {
  it('aborted before, and while queued behind a call the registry holds up; the proxy stays usable', async () => {
    await using proxy = await spawn();
    const first = await proxy.openImage(ref('v1'));
    await assert.rejects(proxy.closeImage(first, { signal: abortedSignal() }), isAbort);
    const second: OpenedImage = await proxy.openImage(ref('v1'));
    await abortWhileWaiting('closeImage', blockerPath, (options) => proxy.closeImage(second, options), blocker(proxy));
    await using third = await proxy.openImage(ref('v1'));
    assert.equal((await proxy.fetchManifest(third)).manifest.config.digest, manifest.config.digest, 'the proxy still serves');
    await proxy.closeImage(third);
    assert.equal(third.closed, true);
  });
});
