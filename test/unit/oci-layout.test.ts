/**
 * The OCI layout writer and the rules that decide the manifest `pull`
 * writes: media types from the bytes' compression, the blobs the source
 * serves replacing the manifest's layers, a served config that differs.
 * (test/pull.test.ts runs all of it against real sources and skopeo.)
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { InvalidArgumentError, type Descriptor, type ImageManifest } from '../../src/index.js';
import { OciLayoutError, OciLayoutWriter } from '../../src/oci-layout.js';
import { layerMediaType, servedLayers, writtenManifest } from '../../src/image-manifest.js';
import { tempDir } from '../support/env.js';
import { sha256 } from '../support/oci-layout.js';

const OCI = 'application/vnd.oci.image.layer.v1.tar';
const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

describe('layerMediaType', () => {
  it('names the compression of the bytes, in OCI terms', () => {
    for (const declared of [OCI, `${OCI}+gzip`, `${OCI}+zstd`, 'application/vnd.docker.image.rootfs.diff.tar.gzip', 'application/vnd.docker.image.rootfs.diff.tar']) {
      assert.equal(layerMediaType(declared, 'none'), OCI, declared);
      assert.equal(layerMediaType(declared, 'gzip'), `${OCI}+gzip`, declared);
      assert.equal(layerMediaType(declared, 'zstd'), `${OCI}+zstd`, declared);
    }
  });

  it('keeps non-distributable layers so, and leaves other media types alone', () => {
    const nd = 'application/vnd.oci.image.layer.nondistributable.v1.tar';
    assert.equal(layerMediaType(`${nd}+gzip`, 'none'), nd);
    assert.equal(layerMediaType('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', 'gzip'), `${nd}+gzip`);
    for (const other of ['application/wasm', `${OCI}+gzip+encrypted`, 'application/vnd.cncf.helm.chart.content.v1.tar+gzip']) {
      assert.equal(layerMediaType(other, 'none'), other);
    }
  });
});

describe('servedLayers', () => {
  const manifestLayers: Descriptor[] = [
    { mediaType: `${OCI}+gzip`, digest: digest(1), size: 10, annotations: { 'org.example': 'x' } },
    { mediaType: OCI, digest: digest(2), size: 20 },
  ];

  it('keeps the manifest`s descriptors when the source serves exactly those blobs', () => {
    const result = servedLayers(manifestLayers, manifestLayers.map(({ digest, size }) => ({ digest, size, mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' })));
    assert.deepEqual(result.changes, []);
    assert.ok(result.layers.every((layer, i) => layer === manifestLayers[i]));
  });

  it('replaces a layer the source serves differently, without its annotations', () => {
    const result = servedLayers(manifestLayers, [
      { digest: digest(3), size: 30, mediaType: OCI },
      { digest: digest(2), size: 20, mediaType: OCI },
    ]);
    assert.deepEqual(result.layers, [{ mediaType: OCI, digest: digest(3), size: 30 }, manifestLayers[1]]);
    assert.equal(result.changes.length, 1);
    assert.match(result.changes[0]!, /^layer 0: the source serves sha256:0+3 \(30 bytes\) instead of sha256:0+1 \(10 bytes\)$/);
  });

  it('a served blob of unknown size (-1, containers-storage on 0.2.3) replaces the layer with size -1, filled in once fetched', () => {
    const result = servedLayers(manifestLayers, [
      { digest: digest(5), size: -1, mediaType: OCI },
      { digest: digest(2), size: -1, mediaType: OCI },
    ]);
    assert.deepEqual(result.layers, [{ mediaType: OCI, digest: digest(5), size: -1 }, manifestLayers[1]], 'the same digest keeps the manifest`s size');
    assert.deepEqual(result.changes, [`layer 0: the source serves ${digest(5)} instead of ${digest(1)} (10 bytes)`]);
  });

  it('replaces all layers when the counts differ', () => {
    const result = servedLayers(manifestLayers, [{ digest: digest(4), size: 40, mediaType: OCI }]);
    assert.deepEqual(result.layers, [{ mediaType: OCI, digest: digest(4), size: 40 }]);
    assert.match(result.changes[0]!, /serves 1 layer blobs where its manifest lists 2/);
  });
});

describe('writtenManifest', () => {
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest(9), size: 90 },
    layers: [
      { mediaType: `${OCI}+gzip`, digest: digest(1), size: 10 },
      { mediaType: OCI, digest: digest(2), size: 20 },
    ],
  };
  const raw = Buffer.from(JSON.stringify(manifest, null, 1));

  it('returns the source`s very bytes when everything matches', () => {
    const result = writtenManifest(raw, manifest, manifest.config, [
      { descriptor: manifest.layers[0]!, compression: 'gzip' },
      { descriptor: manifest.layers[1]!, compression: 'none' },
    ]);
    assert.equal(result.raw, raw);
    assert.deepEqual(result.changes, []);
  });

  it('rewrites a media type that does not name the bytes` compression', () => {
    const result = writtenManifest(raw, manifest, manifest.config, [
      { descriptor: manifest.layers[0]!, compression: 'none' },
      { descriptor: manifest.layers[1]!, compression: 'none' },
    ]);
    assert.notEqual(result.raw, raw);
    const parsed = JSON.parse(result.raw.toString('utf8')) as ImageManifest;
    assert.deepEqual(parsed.layers.map((l) => l.mediaType), [OCI, OCI]);
    assert.deepEqual(parsed.config, manifest.config);
    assert.equal(result.changes.length, 1);
    assert.match(result.changes[0]!, /^layer 0 \(sha256:0+1\) is uncompressed tar: written as application\/vnd\.oci\.image\.layer\.v1\.tar, not .*\+gzip$/);
  });

  it('describes a config other than the manifest names', () => {
    const config = { ...manifest.config, digest: digest(8), size: 80 };
    const result = writtenManifest(raw, manifest, config, manifest.layers.map((descriptor, i) => ({ descriptor, compression: i === 0 ? ('gzip' as const) : ('none' as const) })));
    assert.deepEqual((JSON.parse(result.raw.toString('utf8')) as ImageManifest).config, config);
  });
});

describe('OciLayoutWriter', () => {
  it('writes blobs, oci-layout and index.json, and a tag replaces only its own entry', async () => {
    using dir = tempDir();
    const layout = await OciLayoutWriter.open(join(dir.path, 'layout'));
    assert.deepEqual(JSON.parse(readFileSync(join(layout.dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const data = gzipSync(Buffer.from('layer'));
    assert.equal(await layout.writeBlob(sha256(data), Readable.from([data])), 'gzip');
    assert.deepEqual(readFileSync(layout.blobPath(sha256(data))), data);
    assert.equal(await layout.blobCompression(sha256(data)), 'gzip');
    const one = await layout.writeBlobBytes(Buffer.from('{"one":1}'));
    const two = await layout.writeBlobBytes(Buffer.from('{"two":2}'));
    await layout.tag({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...one }, 'a');
    await layout.tag({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...one }, 'b');
    await layout.tag({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...two }, 'a');
    const index = JSON.parse(readFileSync(join(layout.dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    assert.deepEqual(
      index.manifests.map((m) => [m.annotations?.['org.opencontainers.image.ref.name'], m.digest]),
      [['b', one.digest], ['a', two.digest]],
    );
    assert.deepEqual(readdirSync(layout.dir).sort(), ['blobs', 'index.json', 'oci-layout'], 'no temporary file is left');
    assert.deepEqual(readdirSync(join(layout.dir, 'blobs', 'sha256')).sort(), [one.digest, two.digest, sha256(data)].map((d) => d.slice(7)).sort());
  });

  it('leaves nothing when the source fails', async () => {
    using dir = tempDir();
    const layout = await OciLayoutWriter.open(dir.path);
    const failing = new Readable({
      read() {
        this.push(Buffer.from('partial'));
        this.destroy(new Error('verification failed'));
      },
    });
    await assert.rejects(layout.writeBlob(digest(5), failing), /verification failed/);
    assert.deepEqual(readdirSync(join(dir.path, 'blobs', 'sha256')), []);
  });

  it('leaves nothing when aborted around the opening of its temporary file', async () => {
    // Aborts before the call and after 0 to 7 turns of the event loop: some land while
    // the file's open is in flight (about one in twenty left a .partial file behind).
    using dir = tempDir();
    const layout = await OciLayoutWriter.open(dir.path);
    for (let i = 0; i < 200; i++) {
      const controller = new AbortController();
      if (i % 2 === 1) controller.abort();
      const writing = layout.writeBlob(digest(i), new Readable({ read() {} }), { signal: controller.signal });
      writing.catch(() => {}); // awaited below
      for (let turn = 0; turn < (i >> 1) % 8; turn++) await new Promise(setImmediate);
      controller.abort();
      await assert.rejects(writing, { name: 'AbortError' });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await new Promise((resolve) => setTimeout(resolve, 200)); // an open still in flight has landed by then
    assert.deepEqual(readdirSync(join(dir.path, 'blobs', 'sha256')), []);
  });

  it('refuses bad digests and tags, a foreign oci-layout and a broken index.json', async () => {
    using dir = tempDir();
    const layout = await OciLayoutWriter.open(dir.path);
    for (const bad of ['sha256:../../etc/passwd', 'sha256:ABC', `sha256:${'a'.repeat(63)}`, 'md5:0123', 'nodigest']) {
      assert.throws(() => layout.blobPath(bad), InvalidArgumentError, bad);
    }
    for (const bad of ['', 'has space', '../up', '-lead', 'trail-', 'a//b']) {
      await assert.rejects(layout.tag({ mediaType: 'x', digest: digest(1), size: 1 }, bad), InvalidArgumentError, bad);
    }
    writeFileSync(join(dir.path, 'index.json'), '{not json');
    await assert.rejects(layout.tag({ mediaType: 'x', digest: digest(1), size: 1 }, 'v1'), OciLayoutError);
    writeFileSync(join(dir.path, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '2.0.0' }));
    await assert.rejects(OciLayoutWriter.open(dir.path), /imageLayoutVersion "2\.0\.0", not 1\.x/);
  });
});
