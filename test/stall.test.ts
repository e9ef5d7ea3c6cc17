/**
 * Stalled and flaky registries: stall detection, the self-healing proxy and
 * opt-in retries, against a real registry behind a test-only fault relay.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import {
  BlobVerificationError,
  ImageProxy,
  ProxyRestartedError,
  RequestError,
  RequestStallError,
  SpawnError,
  StallError,
  isRetryable,
  withRetry,
  type BlobOptions,
  type BlobStream,
  type Descriptor,
  type ImageManifest,
  type ImageProxyConfig,
  type RestartEvent,
  type RetryEvent,
} from '../src/index.js';
import { SKOPEO, baseConfig, tempDir, watchdog } from './support/env.js';
import { FaultRelay } from './support/fault-relay.js';
import { buildImage, noise, sha256, type BuiltImage } from './support/oci-layout.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { RELEASE, SKOPEO_RELEASE, TRANSFERS } from './support/skopeo-release.js';

const STALL_MS = 1500;
const MiB = 1024 * 1024;
const scratch = tempDir();
let registry: TestRegistry;
let relay: FaultRelay;
/** The images as the registry stores them (skopeo compresses layers when pushing). */
let image: PushedImage;
let other: PushedImage;

interface PushedImage {
  source: BuiltImage;
  layers: Descriptor[];
}

async function pushed(source: BuiltImage, repositoryAndTag: string): Promise<PushedImage> {
  await registry.push(source.reference, repositoryAndTag);
  const manifest = JSON.parse((await registry.rawManifest(repositoryAndTag)).toString('utf8')) as ImageManifest;
  return { source, layers: manifest.layers };
}

const config = (extra: ImageProxyConfig = {}): ImageProxyConfig => baseConfig({ insecureSkipTlsVerification: true, stallTimeout: STALL_MS, ...extra });
const ref = (tag: string): string => `docker://${relay.host}/stall/app:${tag}`;
const blobPath = (digest: string): RegExp => new RegExp(`/blobs/${digest}$`);

before(async () => {
  registry = await startRegistry();
  relay = await FaultRelay.start(registry.port, { keepAlive: false });
  const layout = join(scratch.path, 'layout');
  const layers = [0, 1, 2].map((i) => ({ entries: [{ type: 'file' as const, name: `blob${i}`, content: noise(4 * MiB, 10 + i) }] }));
  image = await pushed(buildImage(layout, 'v1', layers), 'stall/app:v1');
  other = await pushed(buildImage(layout, 'other', [{ entries: [{ type: 'file', name: 'small', content: 'small\n' }] }]), 'stall/app:other');
});

after(async () => {
  await relay?.stop();
  await registry?.stop();
  scratch[Symbol.dispose]();
});

async function fetchLayer(proxy: ImageProxy, tag: string, index: number): Promise<Buffer> {
  const img = await proxy.openImage(ref(tag));
  try {
    const layer = (tag === 'v1' ? image : other).layers[index]!;
    return await buffer(await proxy.getBlob(img, layer.digest, layer.size));
  } finally {
    await img.close().catch(() => {});
  }
}

describe('stall detection and recovery', () => {
  it('fails a blob that stalls after 1 MiB with StallError, then keeps serving', async () => {
    await using proxy = await ImageProxy.spawn(config());
    const restarts: RestartEvent[] = [];
    proxy.on('restart', (event) => restarts.push(event));
    const layer = image.layers[0]!;
    relay.inject(blobPath(layer.digest), { kind: 'stall', afterBytes: MiB });
    await using img = await proxy.openImage(ref('v1'));
    const started = Date.now();
    const error = await watchdog(STALL_MS + 10_000, 'stall', buffer(await proxy.getBlob(img, layer.digest, layer.size)).then(() => null, (e: unknown) => e));
    const surfacedAfter = Date.now() - started;
    assert.ok(error instanceof StallError, String(error));
    assert.equal(error.retryable, true);
    assert.equal(error.digest, layer.digest);
    assert.ok(error.bytesReceived >= MiB / 2 && error.bytesReceived <= MiB, `bytes received ${error.bytesReceived}`);
    assert.ok(surfacedAfter >= STALL_MS, `surfaced after ${surfacedAfter} ms`);
    // The proxy, restarted or not, serves another image and the held one.
    assert.equal(sha256(await watchdog(20_000, 'after stall', fetchLayer(proxy, 'other', 0))), other.layers[0]!.digest);
    const again = image.layers[1]!;
    assert.equal(sha256(await buffer(await proxy.getBlob(img, again.digest, again.size))), again.digest, 'the held image still works');
    // GetBlob leaves skopeo wedged in FinishPipe: the proxy restarts it. GetRawBlob does not need to.
    assert.equal(restarts.length, RELEASE.getRawBlob ? 0 : 1, `skopeo ${SKOPEO_RELEASE}`);
    assert.equal(proxy.restarts, restarts.length);
    relay.releaseStalled();
  });

  it('restarts a wedged GetBlob proxy on every protocol version when GetBlob is forced', async () => {
    await using proxy = await ImageProxy.spawn(config());
    const layer = image.layers[2]!;
    relay.inject(blobPath(layer.digest), { kind: 'stall', afterBytes: MiB });
    await using img = await proxy.openImage(ref('v1'));
    const stream = await proxy.getBlob(img, layer.digest, layer.size, { transfer: 'GetBlob' });
    await assert.rejects(watchdog(STALL_MS + 10_000, 'stall', buffer(stream)), StallError);
    assert.equal(sha256(await buffer(await proxy.getBlob(img, layer.digest, layer.size, { transfer: 'GetBlob' }))), layer.digest);
    assert.equal(proxy.restarts, 1);
    relay.releaseStalled();
  });

  it('delivers the blob complete with withRetry once the relay stops stalling', async () => {
    await using proxy = await ImageProxy.spawn(config());
    const layer = image.layers[1]!;
    relay.inject(blobPath(layer.digest), { kind: 'stall', afterBytes: MiB });
    await using img = await proxy.openImage(ref('v1'));
    const retries: number[] = [];
    const bytes = await watchdog(
      30_000,
      'retried stall',
      withRetry({ attempts: 3, backoff: 100 }, async () => buffer(await proxy.getBlob(img, layer.digest, layer.size)), (event) => retries.push(event.attempt)),
    );
    assert.equal(sha256(bytes), layer.digest);
    assert.deepEqual(retries, [2]);
    relay.releaseStalled();
  });

  it('replaces the child when a request gets no answer (a registry that never answers)', async () => {
    await using proxy = await ImageProxy.spawn(config());
    await using held = await proxy.openImage(ref('other'));
    relay.inject(/\/manifests\/v1$/, { kind: 'stall', afterBytes: 0 });
    const restarted = once(proxy, 'restart');
    const error = await watchdog(STALL_MS + 10_000, 'hung OpenImage', proxy.openImage(ref('v1')).catch((e: unknown) => e));
    assert.ok(error instanceof ProxyRestartedError, String(error));
    assert.ok(error.reason instanceof RequestStallError && error.reason.method === 'OpenImage', String(error.reason));
    assert.equal(error.retryable, true);
    const [event] = (await watchdog(10_000, 'restart event', restarted)) as [RestartEvent];
    assert.equal(event.reason, error.reason);
    assert.equal(proxy.restarts, 1);
    await using again = await proxy.openImage(ref('v1'));
    assert.equal((await proxy.fetchManifest(again)).manifest.layers.length, 3);
    const layer = other.layers[0]!;
    assert.equal(sha256(await buffer(await proxy.getBlob(held, layer.digest, layer.size))), layer.digest, 'the held image was re-opened');
    relay.releaseStalled();
  });

  it('gives up a held image whose re-open hangs, and keeps serving the rest', async () => {
    await using proxy = await ImageProxy.spawn(config());
    await using held = await proxy.openImage(ref('other'));
    relay.inject(/\/manifests\/v1$/, { kind: 'stall', afterBytes: 0 });
    relay.inject(/\/manifests\/other$/, { kind: 'stall', afterBytes: 0 });
    await assert.rejects(watchdog(STALL_MS * 2 + 10_000, 'hung OpenImage', proxy.openImage(ref('v1'))), ProxyRestartedError);
    await assert.rejects(watchdog(STALL_MS + 10_000, 'lost image', proxy.fetchManifest(held)), RequestStallError);
    await using fresh = await watchdog(10_000, 'after', proxy.openImage(ref('v1')));
    assert.equal((await proxy.fetchManifest(fresh)).manifest.layers.length, 3);
    relay.releaseStalled();
  });

  it('reports why when the replacement skopeo cannot start', async () => {
    using dir = tempDir();
    // A skopeo that starts once: the restart after the stall fails.
    const once = join(dir.path, 'skopeo-once');
    writeFileSync(once, `#!/bin/sh\nif [ -e "$0.used" ]; then echo "no second start" >&2; exit 3; fi\ntouch "$0.used"\nexec '${SKOPEO}' "$@"\n`, { mode: 0o755 });
    await using proxy = await ImageProxy.spawn(config({ skopeoCommand: [once] }));
    const layer = image.layers[2]!;
    relay.inject(blobPath(layer.digest), { kind: 'stall', afterBytes: MiB });
    await using img = await proxy.openImage(ref('v1'));
    await assert.rejects(watchdog(STALL_MS + 10_000, 'stall', (async () => buffer(await proxy.getBlob(img, layer.digest, layer.size, { transfer: 'GetBlob' })))()), StallError);
    const error = await watchdog(10_000, 'after a failed restart', proxy.openImage(ref('other')).catch((e: unknown) => e));
    assert.ok(error instanceof SpawnError, String(error));
    assert.match(error.message, /no second start/);
    assert.equal(proxy.running, false);
    relay.releaseStalled();
  });

  it('lets a slow drip through when it is faster than the stall timeout', async () => {
    await using proxy = await ImageProxy.spawn(config());
    const layer = other.layers[0]!;
    relay.inject(blobPath(layer.digest), { kind: 'drip', chunkBytes: 16, intervalMs: Math.floor(STALL_MS / 5) });
    await using img = await proxy.openImage(ref('other'));
    assert.equal(sha256(await watchdog(60_000, 'drip', buffer(await proxy.getBlob(img, layer.digest, layer.size)))), layer.digest);
    assert.equal(proxy.restarts, 0);
  });

  it('does not hang when one of several blobs in flight stalls', async () => {
    await using proxy = await ImageProxy.spawn(config());
    await using img = await proxy.openImage(ref('v1'));
    relay.inject(blobPath(image.layers[1]!.digest), { kind: 'stall', afterBytes: MiB });
    const streams: BlobStream[] = [];
    for (const layer of image.layers) streams.push(await proxy.getBlob(img, layer.digest, layer.size));
    const outcomes = await watchdog(
      STALL_MS + 20_000,
      'concurrent stall',
      Promise.all(streams.map((s) => buffer(s).then((b) => sha256(b), (e: unknown) => e))),
    );
    assert.ok(outcomes[1] instanceof StallError, `the stalled one: ${String(outcomes[1])}`);
    for (const i of [0, 2]) {
      // GetRawBlob streams are independent: they complete. GetBlob ones share the
      // wedged child, which is replaced: a stream not finished by then fails
      // with ProxyRestartedError, and with nothing else.
      const outcome = outcomes[i];
      const restarted = !RELEASE.getRawBlob && outcome instanceof ProxyRestartedError;
      assert.ok(outcome === image.layers[i]!.digest || restarted, `blob ${i} on skopeo ${SKOPEO_RELEASE}: ${String(outcome)}`);
    }
    relay.releaseStalled();
  });
});

describe('retries', () => {
  const options = (extra: BlobOptions = {}): BlobOptions => ({ retry: { attempts: 3, backoff: 50 }, ...extra });

  for (const [what, fault] of [
    ['a connection reset mid-body', { kind: 'reset', afterBytes: 512 * 1024 }],
    ['a first-attempt 503', { kind: 'status', status: 503 }],
    ['a connection closed before the headers', { kind: 'close-before-headers' }],
  ] as const) {
    // skopeo itself resumes a body cut mid-way (an HTTP Range request) from 1.12 on: no failure reaches us.
    const resumed = fault.kind === 'reset' && RELEASE.resumesInterruptedBodies;

    it(`${what}: without retry, ${resumed ? 'skopeo resumes the body' : 'the failure is retryable'}`, async () => {
      await using proxy = await ImageProxy.spawn(config());
      await using img = await proxy.openImage(ref('v1'));
      const layer = image.layers[2]!;
      relay.inject(blobPath(layer.digest), fault);
      const before = relay.count(blobPath(layer.digest));
      const outcome = await watchdog(30_000, what, (async () => sha256(await buffer(await proxy.getBlob(img, layer.digest, layer.size))))()).catch((e: unknown) => e);
      if (resumed) {
        assert.equal(outcome, layer.digest, `skopeo ${SKOPEO_RELEASE} resumes`);
        assert.equal(relay.count(blobPath(layer.digest)), before + 2, 'the cut request and the resumed one');
      } else {
        assert.ok(outcome instanceof RequestError, `${what} on skopeo ${SKOPEO_RELEASE}: ${String(outcome)}`);
        assert.equal(outcome.retryable, true, `${outcome.name}: ${outcome.message}`);
        assert.equal(relay.count(blobPath(layer.digest)), before + 1, 'one request, which failed');
      }
    });

    it(`${what}: with a retry policy, ${fault.kind === 'reset' ? (resumed ? 'skopeo resumes and nothing is retried' : 'withRetry around the transfer recovers (bytes had gone out)') : 'getBlob retries by itself'}`, async () => {
      await using proxy = await ImageProxy.spawn(config());
      await using img = await proxy.openImage(ref('v1'));
      const layer = image.layers[2]!;
      relay.inject(blobPath(layer.digest), fault);
      const before = relay.count(blobPath(layer.digest));
      if (fault.kind !== 'reset' || resumed) {
        const stream = await watchdog(30_000, 'open', proxy.getBlob(img, layer.digest, layer.size, options()));
        const retries: RetryEvent[] = [];
        stream.on('retry', (event: RetryEvent) => retries.push(event));
        assert.equal(sha256(await watchdog(30_000, `${what} with retry`, buffer(stream))), layer.digest);
        assert.equal(relay.count(blobPath(layer.digest)), before + 2, 'the failed request and the one that served the blob');
        assert.equal(retries.length, 0, 'the stream itself did not have to re-open');
        return;
      }
      // The reset comes after bytes went out: the stream must not start over by itself (a consumer
      // would see bytes twice); it fails, retryably, and withRetry around the whole transfer recovers.
      let attempts = 0;
      const bytes = await watchdog(
        30_000,
        `${what} with withRetry`,
        withRetry({ attempts: 3, backoff: 50 }, async () => {
          attempts++;
          return buffer(await proxy.getBlob(img, layer.digest, layer.size, options()));
        }),
      );
      assert.equal(sha256(bytes), layer.digest);
      assert.equal(attempts, 2);
      assert.equal(relay.count(blobPath(layer.digest)), before + 2);
    });
  }

  for (const transfer of TRANSFERS) {
    it(`a ${transfer} stream that stalls before its first byte re-opens by itself and delivers the blob`, async () => {
      await using proxy = await ImageProxy.spawn(config());
      await using img = await proxy.openImage(ref('v1'));
      const layer = image.layers[1]!;
      relay.inject(blobPath(layer.digest), { kind: 'stall', afterBytes: 0, headersFirst: true });
      const before = relay.count(blobPath(layer.digest));
      // Headers come at once, so the stream opens; then nothing: StallError with 0 bytes emitted.
      const stream = await watchdog(30_000, 'open', proxy.getBlob(img, layer.digest, layer.size, options({ transfer })));
      const retries: RetryEvent[] = [];
      stream.on('retry', (event: RetryEvent) => retries.push(event));
      const bytes = await watchdog(STALL_MS + 30_000, 'stalled, then re-opened', buffer(stream));
      assert.equal(sha256(bytes), layer.digest);
      assert.equal(retries.length, 1, 'one re-open');
      assert.equal(retries[0]!.attempt, 2);
      assert.ok(retries[0]!.error instanceof StallError, String(retries[0]!.error));
      assert.equal(relay.count(blobPath(layer.digest)), before + 2, 'the stalled request and the re-opened one');
      // GetBlob leaves skopeo wedged in FinishPipe: the re-open went to a replacement child.
      assert.equal(proxy.restarts, transfer === 'GetBlob' ? 1 : 0);
      relay.releaseStalled();
    });
  }

  it('never retries a digest mismatch', async () => {
    await using proxy = await ImageProxy.spawn(config());
    await using img = await proxy.openImage(ref('v1'));
    const layer = image.layers[0]!;
    relay.inject(blobPath(layer.digest), { kind: 'corrupt', atByte: 1000 }, 5);
    let attempts = 0;
    const error = await watchdog(
      30_000,
      'corrupt',
      withRetry({ attempts: 3, backoff: 50 }, async () => {
        attempts++;
        return buffer(await proxy.getBlob(img, layer.digest, layer.size, { retry: { attempts: 3, backoff: 50 } }));
      }).catch((e: unknown) => e),
    );
    relay.clear();
    assert.ok(error instanceof BlobVerificationError, String(error));
    assert.equal(isRetryable(error), false);
    assert.equal(attempts, 1);
  });

  it('never retries unauthorized', async () => {
    const secured = await startRegistry({ auth: { username: 'alice', password: 'right-password' } });
    try {
      await secured.push(other.source.reference, 'private/app:v1');
      await using proxy = await ImageProxy.spawn(config({ credentials: { registry: secured.host, username: 'alice', password: 'wrong-password' } }));
      let attempts = 0;
      const error = await withRetry({ attempts: 3, backoff: 50 }, async () => {
        attempts++;
        return proxy.openImage(secured.reference('private/app:v1'));
      }).catch((e: unknown) => e);
      assert.ok(error instanceof RequestError && /unauthorized|authentication required/i.test(error.message), String(error));
      assert.equal(error.retryable, false);
      assert.equal(attempts, 1);
    } finally {
      await secured.stop();
    }
  });
});

describe('cli retries', () => {
  const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');
  const run = (...args: string[]) =>
    new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, ...args, '--skopeo', SKOPEO, '--tls-verify=false'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
      child.on('close', (status) => resolve({ status, stderr }));
    });

  it('pull --retry recovers from a stall and reports the retry in its progress', async () => {
    using dir = tempDir();
    const layer = image.layers[0]!;
    relay.inject(blobPath(layer.digest), { kind: 'stall', afterBytes: MiB });
    const result = await watchdog(60_000, 'cli pull', run('pull', ref('v1'), join(dir.path, 'out'), '--retry', '2', '--stall-timeout', '2', '--json'));
    relay.releaseStalled();
    assert.equal(result.status, 0, result.stderr);
    const events = result.stderr.trim().split('\n').map((line) => JSON.parse(line) as { event: string; digest: string; attempt?: number; error?: string });
    const retry = events.find((e) => e.event === 'blob-retry' && e.digest === layer.digest);
    assert.ok(retry, result.stderr);
    assert.equal(retry.attempt, 2);
    assert.match(retry.error ?? '', /stalled|restarted/);
    assert.equal(sha256(readFileSync(join(dir.path, 'out', 'blobs', 'sha256', layer.digest.slice(7)))), layer.digest);
  });

  it('pull without --retry fails on a stall with a one-line error', async () => {
    using dir = tempDir();
    const layer = image.layers[0]!;
    relay.inject(blobPath(layer.digest), { kind: 'stall', afterBytes: MiB });
    const result = await watchdog(60_000, 'cli pull', run('pull', ref('v1'), join(dir.path, 'out'), '--stall-timeout', '2', '--jobs', '1'));
    relay.releaseStalled();
    assert.equal(result.status, 1);
    assert.match(result.stderr, /^containers-image-proxy: error: .*(stalled|restarted)/);
    assert.equal(result.stderr.trim().split('\n').length, 1);
  });
});
