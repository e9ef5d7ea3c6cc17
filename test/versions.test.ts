/**
 * One API over protocol 0.2.3 to 0.2.8: the fallbacks and the fastest path
 * of each skopeo release in the matrix ($SKOPEO).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { FEATURE_VERSIONS, ImageProxy, RequestError, type Feature } from '../src/index.js';
import { baseConfig, skopeo, tempDir, watchdog } from './support/env.js';
import { buildImage, sha256, noise, type BuiltImage } from './support/oci-layout.js';
import { freePort, startRegistry, type TestRegistry } from './support/registry.js';
import { DEFAULT_TRANSFER, RELEASE, SKOPEO_RELEASE } from './support/skopeo-release.js';

const scratch = tempDir();
let image: BuiltImage;
let proxy: ImageProxy;
let registry: TestRegistry;

before(async () => {
  image = buildImage(join(scratch.path, 'layout'), 'v1', [
    { entries: [{ type: 'file', name: 'a', content: 'a' }] },
    { compression: 'none', entries: [{ type: 'file', name: 'big', content: noise(3_000_000, 5) }] },
  ]);
  registry = await startRegistry();
  await registry.push(image.reference, 'versions/app:v1');
  proxy = await ImageProxy.spawn(baseConfig({ insecureSkipTlsVerification: true }));
});

after(async () => {
  await proxy?.close();
  await registry?.stop();
  scratch[Symbol.dispose]();
});

describe('the protocol of this skopeo release', () => {
  it('is the version skopeo reports, and supports() agrees feature by feature', () => {
    assert.equal(proxy.protocolVersion, RELEASE.protocol, `skopeo ${SKOPEO_RELEASE}`);
    const expected: Record<Feature, boolean> = {
      GetFullConfig: true,
      OpenImageOptional: RELEASE.openImageOptional,
      GetLayerInfo: RELEASE.getLayerInfo,
      PolicyEnforcement: RELEASE.policyEnforcement,
      GetLayerInfoPiped: RELEASE.getLayerInfoPiped,
      GetRawBlob: RELEASE.getRawBlob,
    };
    assert.deepEqual(Object.keys(FEATURE_VERSIONS).sort(), Object.keys(expected).sort(), 'every feature has an expectation here');
    for (const [feature, supported] of Object.entries(expected)) {
      assert.equal(proxy.supports(feature as Feature), supported, `${feature} on skopeo ${SKOPEO_RELEASE}`);
    }
  });
});

describe(`openImageOptional (native from 0.2.4, emulated on 0.2.3)`, () => {
  const missing = (): Array<[string, string]> => [
    ['docker:// missing tag', registry.reference('versions/app:nope')],
    ['docker:// missing repository', registry.reference('versions/none:v1')],
    ['oci: missing tag', `oci:${image.layout}:nope`],
    ['oci: missing directory', `oci:${join(scratch.path, 'no-layout')}:v1`],
    ['oci-archive: missing file', `oci-archive:${join(scratch.path, 'none.tar')}:v1`],
    ['dir: missing directory', `dir:${join(scratch.path, 'no-dir')}`],
    ['docker-archive: missing file', `docker-archive:${join(scratch.path, 'none-docker.tar')}`],
  ];

  it('maps not-found to null on every transport', async () => {
    for (const [what, reference] of missing()) {
      assert.equal(await watchdog(20_000, what, proxy.openImageOptional(reference)), null, what);
    }
  });

  it('opens images that exist on every transport', async () => {
    const archive = join(scratch.path, 'image.tar');
    const dir = join(scratch.path, 'dir-image');
    skopeo('copy', '--quiet', image.reference, `oci-archive:${archive}:v1`);
    skopeo('copy', '--quiet', image.reference, `dir:${dir}`);
    for (const reference of [registry.reference('versions/app:v1'), image.reference, `oci-archive:${archive}:v1`, `dir:${dir}`]) {
      const opened = await proxy.openImageOptional(reference);
      assert.ok(opened, reference);
      const { manifest } = await proxy.fetchManifest(opened);
      assert.equal(manifest.layers.length, 2, reference);
      await opened.close();
    }
  });

  it('still throws errors that are not "not found"', async () => {
    const port = await freePort(); // nothing listens there
    await assert.rejects(proxy.openImageOptional(`docker://127.0.0.1:${port}/x/y:z`), (e: unknown) => e instanceof RequestError && /connect|refused/i.test(e.message));
    await assert.rejects(proxy.openImageOptional('bogus-transport:x'), RequestError);
  });
});

describe('getLayerInfo and getLayerDiffIds', () => {
  const method = (): string =>
    RELEASE.getLayerInfoPiped ? 'GetLayerInfoPiped' : RELEASE.getLayerInfo ? 'GetLayerInfo (inline reply > 32 KiB)' : 'the manifest (fallback)';

  it(`lists 300 layers whole`, async (t) => {
    t.diagnostic(`via ${method()}`);
    const layers = Array.from({ length: 300 }, (_, i) => ({ entries: [{ type: 'file' as const, name: `layer-${i}`, content: `${i}` }] }));
    const many = buildImage(join(scratch.path, 'many'), 'v1', layers);
    await using img = await proxy.openImage(many.reference);
    const info = await proxy.getLayerInfo(img);
    assert.equal(info.length, 300);
    assert.deepEqual(info, many.layers.map(({ digest, size, mediaType }) => ({ digest, size, mediaType })));
    assert.ok(JSON.stringify(info.map((l) => ({ digest: l.digest, size: l.size, media_type: l.mediaType }))).length > 32 * 1024, 'the reply is larger than 32 KiB');
    const withDiffIds = await proxy.getLayerDiffIds(img);
    assert.deepEqual(withDiffIds.map((l) => l.diffId), many.layers.map((l) => l.diffId));
  });
});

describe('the fastest blob path of each version', () => {
  it('uses GetRawBlob on 0.2.8 and GetBlob before, and both verify', async () => {
    await using img = await proxy.openImage(image.reference);
    const layer = image.layers[1]!;
    const stream = await proxy.getBlob(img, layer.digest, layer.size);
    assert.equal(stream.transfer, DEFAULT_TRANSFER);
    assert.equal(sha256(await buffer(stream)), layer.digest);
  });

  it('carries 0.2.8 error codes in RequestError.code', async () => {
    const error = await proxy.openImage(`oci:${image.layout}:nope`).catch((e: unknown) => e);
    assert.ok(error instanceof RequestError);
    if (RELEASE.getRawBlob) assert.equal(typeof error.code, 'string');
    else assert.equal(error.code, undefined);
  });

  it('keeps serving other requests while a stream sits paused (FinishPipe waits for its bytes)', async () => {
    await using img = await proxy.openImage(image.reference);
    const layer = image.layers[1]!;
    const stream = await proxy.getBlob(img, layer.digest, layer.size, { transfer: 'GetBlob' });
    await new Promise<void>((resolve) => stream.once('readable', () => resolve()));
    stream.pause(); // nobody reads: its FinishPipe is not sent, so nothing waits behind it
    await watchdog(10_000, 'requests beside a paused stream', (async () => {
      await using other = await proxy.openImage(image.reference);
      await proxy.fetchManifest(other);
      await proxy.fetchConfig(other);
    })());
    assert.equal(sha256(await buffer(stream)), layer.digest);
  });
});
