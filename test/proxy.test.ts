/**
 * The core client against real skopeo (the release chosen by $SKOPEO) on OCI
 * layouts generated here.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, truncateSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import {
  BlobVerificationError,
  ImageClosedError,
  ImageProxy,
  InvalidArgumentError,
  ProxyClosedError,
  RequestError,
  SpawnError,
  type BlobStream,
  type BlobTransfer,
} from '../src/index.js';
import { baseConfig, openFds, processExists, skopeo, tempDir, eventually, watchdog } from './support/env.js';
import { buildImage, noise, sha256, type BuiltImage } from './support/oci-layout.js';
import { DEFAULT_TRANSFER, RELEASE, SKOPEO_RELEASE, TRANSFERS } from './support/skopeo-release.js';

const scratch = tempDir();
let image: BuiltImage;
let big: BuiltImage;
let proxy: ImageProxy;

before(async () => {
  const layout = join(scratch.path, 'layout');
  image = buildImage(layout, 'v1', [
    { entries: [{ type: 'dir', name: 'etc/' }, { type: 'file', name: 'etc/hello.txt', content: 'hello\n' }] },
    { compression: 'none', entries: [{ type: 'file', name: 'data.bin', content: noise(300_000, 7) }] },
  ]);
  big = buildImage(
    layout,
    'eight',
    Array.from({ length: 8 }, (_, i) => ({ compression: 'none' as const, entries: [{ type: 'file' as const, name: `f${i}`, content: noise(1_000_000 + i, i + 1) }] })),
  );
  proxy = await ImageProxy.spawn(baseConfig());
});

after(async () => {
  await proxy?.close();
  scratch[Symbol.dispose]();
});

const transfers = (): BlobTransfer[] => [...TRANSFERS];

describe('handshake', () => {
  it('reports the protocol version skopeo speaks', () => {
    assert.equal(proxy.protocolVersion, RELEASE.protocol, `skopeo ${SKOPEO_RELEASE}`);
    assert.ok(proxy.supports('GetFullConfig'));
    assert.ok(proxy.pid! > 0);
  });
});

describe('metadata', () => {
  it('fetches the manifest bytes with their digest', async () => {
    await using img = await proxy.openImage(image.reference);
    const { digest, raw } = await proxy.fetchManifestRaw(img);
    assert.equal(digest, image.manifestDigest);
    assert.deepEqual(raw, readFileSync(image.manifestPath));
  });

  it('parses the manifest and the config', async () => {
    await using img = await proxy.openImage(image.reference);
    const { manifest } = await proxy.fetchManifest(img);
    assert.deepEqual(
      manifest.layers.map((l) => l.digest),
      image.layers.map((l) => l.digest),
    );
    const config = await proxy.fetchConfig(img);
    assert.deepEqual(config.rootfs.diff_ids, image.layers.map((l) => l.diffId));
    assert.equal(config.config?.Labels?.['org.example.tag'], 'v1');
    assert.equal(sha256(await proxy.fetchConfigRaw(img)), image.configDigest);
  });

  it('lists the layers getBlob can serve', async () => {
    await using img = await proxy.openImage(image.reference);
    const layers = await proxy.getLayerInfo(img);
    assert.deepEqual(
      layers,
      image.layers.map(({ digest, size, mediaType }) => ({ digest, size, mediaType })),
    );
  });

  it('converts a Docker schema 2 image to OCI and keeps the original digest', async () => {
    const dir = join(scratch.path, 'docker-v2s2');
    skopeo('copy', '--quiet', '--format', 'v2s2', image.reference, `dir:${dir}`);
    const original = readFileSync(join(dir, 'manifest.json'));
    assert.match(original.toString(), /application\/vnd\.docker\.distribution\.manifest\.v2\+json/);
    await using img = await proxy.openImage(`dir:${dir}`);
    const { digest, manifest } = await proxy.fetchManifest(img);
    assert.equal(digest, sha256(original));
    assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.match(manifest.layers[0]!.mediaType, /^application\/vnd\.oci\.image\.layer\.v1\.tar/);
    const config = await proxy.fetchConfig(img);
    assert.deepEqual(config.rootfs.diff_ids, image.layers.map((l) => l.diffId));
  });
});

describe('blobs', () => {
  for (const transfer of ['GetBlob', 'GetRawBlob'] as const) {
    it(`streams gzip and uncompressed layers byte for byte (${transfer})`, async (t) => {
      if (transfer === 'GetRawBlob' && !RELEASE.getRawBlob) {
        t.skip(`GetRawBlob needs protocol 0.2.8; skopeo ${SKOPEO_RELEASE} speaks ${RELEASE.protocol}`);
        return;
      }
      await using img = await proxy.openImage(image.reference);
      for (const layer of image.layers) {
        const stream = await proxy.getBlob(img, layer.digest, layer.size, { transfer });
        assert.equal(stream.transfer, transfer);
        assert.deepEqual(await buffer(stream), readFileSync(layer.path));
      }
    });
  }

  it('picks GetRawBlob by default where the proxy has it, GetBlob otherwise', async () => {
    await using img = await proxy.openImage(image.reference);
    const layer = image.layers[0]!;
    const stream = await proxy.getDescriptor(img, layer);
    assert.equal(stream.transfer, DEFAULT_TRANSFER);
    await buffer(stream);
  });

  it('fails a corrupted blob with BlobVerificationError and stays usable', async () => {
    for (const transfer of transfers()) {
      await using dir = tempDir();
      cpSync(image.layout, dir.path, { recursive: true });
      const layer = image.layers[1]!;
      const path = join(dir.path, 'blobs', 'sha256', layer.digest.slice(7));
      const bytes: Buffer = readFileSync(path);
      bytes[1000] = bytes[1000]! ^ 0xff;
      writeFileSync(path, bytes);
      await using img = await proxy.openImage(`oci:${dir.path}:v1`);
      const stream = await proxy.getBlob(img, layer.digest, layer.size, { transfer });
      await assert.rejects(watchdog(10_000, 'corrupt blob', buffer(stream)), BlobVerificationError);
      const config = await proxy.fetchConfig(img);
      assert.equal(config.architecture, 'amd64');
    }
  });

  it('fails a size smaller or larger than the blob with a typed error, without hanging', async () => {
    await using img = await proxy.openImage(image.reference);
    const layer = image.layers[1]!;
    assert.ok(layer.size > 256 * 1024, 'a blob of more than one read: the size is crossed in a later read');
    for (const transfer of transfers()) {
      for (const size of [layer.size - 10, layer.size + 10]) {
        let delivered = 0;
        const attempt = (async () => {
          const stream = await proxy.getBlob(img, layer.digest, size, { transfer });
          stream.on('data', (chunk: Buffer) => (delivered += chunk.length));
          return buffer(stream);
        })();
        const error = await watchdog(10_000, `size ${size} via ${transfer}`, attempt.then(() => null, (e: unknown) => e));
        if (process.env.DEBUG_ERRORS) console.log(transfer, size - layer.size, String(error));
        // A valid size that is not the blob's: a verification failure about this blob and that size, nothing else.
        assert.ok(error instanceof BlobVerificationError, `${transfer} size ${size}: ${String(error)}`);
        assert.equal(error.digest, layer.digest);
        assert.equal(error.expectedSize, size);
        assert.ok(delivered <= size, `${transfer} size ${size}: ${delivered} bytes handed over, more than the size asked for`);
        // GetBlob (the blob is more than one 256 KiB read): skopeo's FinishPipe names both counts; its words are kept.
        if (transfer === 'GetBlob') assert.equal(error.detail, `expected ${size} bytes in blob, got ${layer.size}`);
      }
    }
    assert.equal((await proxy.getLayerInfo(img)).length, 2, 'proxy still serves requests');
  });

  it('fails with a verification error when the source file is shorter than its size', async () => {
    await using dir = tempDir();
    cpSync(image.layout, dir.path, { recursive: true });
    const layer = image.layers[1]!;
    truncateSync(join(dir.path, 'blobs', 'sha256', layer.digest.slice(7)), 1000);
    await using img = await proxy.openImage(`oci:${dir.path}:v1`);
    for (const transfer of transfers()) {
      const attempt = (async () => buffer(await proxy.getBlob(img, layer.digest, layer.size, { transfer })))();
      await assert.rejects(watchdog(10_000, 'short source', attempt), (e: unknown) => {
        if (process.env.DEBUG_ERRORS) console.log('short', transfer, String(e));
        return e instanceof BlobVerificationError;
      });
    }
    assert.ok(await proxy.fetchConfig(img));
  });

  it('streams 8 blobs opened at once, consumed in reverse order', async () => {
    await using img = await proxy.openImage(big.reference);
    for (const transfer of transfers()) {
      const streams: BlobStream[] = [];
      for (const layer of big.layers) streams.push(await proxy.getBlob(img, layer.digest, layer.size, { transfer }));
      for (let i = streams.length - 1; i >= 0; i--) {
        const bytes = await watchdog(20_000, `stream ${i}`, buffer(streams[i]!));
        assert.equal(sha256(bytes), big.layers[i]!.digest);
      }
    }
  });

  it('survives streams destroyed early and keeps serving', async () => {
    await using img = await proxy.openImage(big.reference);
    for (const transfer of transfers()) {
      for (const cut of [1, 500_000, 999_000]) {
        const layer = big.layers[0]!;
        const stream = await proxy.getBlob(img, layer.digest, layer.size, { transfer });
        let seen = 0;
        await assert.rejects(
          pipeline(
            stream,
            new Writable({
              write(chunk: Buffer, _encoding, callback) {
                seen += chunk.length;
                callback(seen >= cut ? new Error('consumer gave up') : null);
              },
            }),
          ),
          /consumer gave up/,
        );
      }
      const layer = big.layers[1]!;
      assert.equal(sha256(await buffer(await proxy.getBlob(img, layer.digest, layer.size, { transfer }))), layer.digest);
    }
  });

  it('aborts a stream through its AbortSignal', async () => {
    await using img = await proxy.openImage(big.reference);
    const layer = big.layers[2]!;
    const controller = new AbortController();
    const stream = await proxy.getBlob(img, layer.digest, layer.size, { signal: controller.signal });
    stream.once('data', () => controller.abort());
    await assert.rejects(buffer(stream), { name: 'AbortError' });
    const before = new AbortController();
    before.abort();
    await assert.rejects(proxy.getBlob(img, layer.digest, layer.size, { signal: before.signal }), { name: 'AbortError' });
    assert.equal((await proxy.getLayerInfo(img)).length, 8);
  });
});

describe('errors', () => {
  it('rejects a missing image or tag with RequestError, and openImageOptional with null', async () => {
    await assert.rejects(proxy.openImage(`oci:${image.layout}:nope`), RequestError);
    await assert.rejects(proxy.openImage(`oci:${join(scratch.path, 'absent')}:v1`), RequestError);
    assert.equal(await proxy.openImageOptional(`oci:${image.layout}:nope`), null);
    assert.equal(await proxy.openImageOptional(`oci:${join(scratch.path, 'absent')}:v1`), null);
    const found = await proxy.openImageOptional(image.reference);
    assert.ok(found !== null);
    await found.close();
  });

  it('rejects a malformed reference and an empty one', async () => {
    await assert.rejects(proxy.openImage('no-such-transport:foo'), (e: unknown) => e instanceof RequestError && /transport/i.test(e.message));
    await assert.rejects(proxy.openImage('--help'), RequestError, 'a reference is data, never a flag');
    await assert.rejects(proxy.openImage(''), InvalidArgumentError);
  });

  it('refuses a bad digest string and a bad size before sending anything', async () => {
    await using img = await proxy.openImage(image.reference);
    await assert.rejects(proxy.getBlob(img, 'not-a-digest', 1), InvalidArgumentError);
    await assert.rejects(proxy.getBlob(img, 'md5:abcd', 1), /not supported/);
    await assert.rejects(proxy.getBlob(img, image.layers[0]!.digest, 2 ** 53), InvalidArgumentError);
    // -1 (or no size) means unknown: see containers-storage.test.ts. Other negatives and fractions are refused.
    await assert.rejects(proxy.getBlob(img, image.layers[0]!.digest, -2), InvalidArgumentError);
    await assert.rejects(proxy.getBlob(img, image.layers[0]!.digest, 1.5), InvalidArgumentError);
    await assert.rejects(proxy.openImage('oci:' + 'x'.repeat(40_000)), /over the proxy's limit/);
    assert.ok(await proxy.fetchConfig(img));
  });

  it('rejects a digest that is not in the image', async () => {
    await using img = await proxy.openImage(image.reference);
    const missing = sha256('nothing');
    const attempt = (async () => buffer(await proxy.getBlob(img, missing, 7)))();
    await assert.rejects(watchdog(10_000, 'missing blob', attempt), (e: unknown) => {
      if (process.env.DEBUG_ERRORS) console.log('missing', String(e));
      return e instanceof RequestError;
    });
  });

  it('refuses use of a closed image', async () => {
    const img = await proxy.openImage(image.reference);
    await img.close();
    await img.close(); // idempotent
    await assert.rejects(proxy.fetchManifest(img), ImageClosedError);
  });

  it('reports skopeo missing with an install hint, leaving no fd behind', async () => {
    const fds = openFds();
    await assert.rejects(ImageProxy.spawn({ skopeoCommand: ['/nonexistent/skopeo'] }), (e: unknown) => e instanceof SpawnError && /apt-get install skopeo/.test(e.message));
    await assert.rejects(ImageProxy.spawn({ skopeoCommand: ['false'] }), SpawnError);
    assert.deepEqual(openFds(), fds);
  });
});

describe('lifecycle', () => {
  it('reaps the child on close and refuses later calls', async () => {
    const own = await ImageProxy.spawn(baseConfig());
    const img = await own.openImage(image.reference);
    const pid = own.pid!;
    await own.close();
    await own.close(); // idempotent
    assert.equal(processExists(pid), false, 'no zombie, no process');
    assert.equal(own.running, false);
    await assert.rejects(own.openImage(image.reference), ProxyClosedError);
    await assert.rejects(own.fetchManifest(img), ProxyClosedError);
  });

  it('leaks no fd over 500 open/fetch/close cycles', async () => {
    const own = await ImageProxy.spawn(baseConfig());
    const fdsBefore = openFds().length;
    const layer = image.layers[0]!;
    for (let i = 0; i < 500; i++) {
      const img = await own.openImage(image.reference);
      await own.fetchManifest(img);
      await own.fetchConfig(img);
      if (i % 10 === 0) await buffer(await own.getBlob(img, layer.digest, layer.size));
      await own.closeImage(img);
    }
    await eventually(() => openFds().length <= fdsBefore, 2000);
    assert.ok(openFds().length <= fdsBefore, `fds before ${fdsBefore}, after ${openFds().length}`);
    await own.close();
  });
});
