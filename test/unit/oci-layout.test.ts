/**
 * The OCI layout writer and the rules that decide the manifest `pull`
 * writes: media types from the bytes' compression, the blobs the source
 * serves replacing the manifest's layers, a served config that differs.
 * (test/pull.test.ts runs all of it against real sources and skopeo.)
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { InvalidArgumentError, type Descriptor, type ImageManifest } from '../../src/index.js';
import { digestOf, indexWithTag, isRunning, OciLayoutError, OciLayoutWriter } from '../../src/oci-layout.js';
import { layerMediaType, servedLayers, writtenManifest } from '../../src/image-manifest.js';
import { openFdsOn, tempDir } from '../support/env.js';
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

describe('OciLayoutWriter, each rule', () => {
  const manifest = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digest(1), size: 1 };
  // A layout written by skopeo 1.22 (test/fixtures/README.md): the reference for what a real one holds.
  const SKOPEO_LAYOUT = new URL('../../../test/fixtures/hello-image-zstd-chunked', import.meta.url);

  it('opens a layout skopeo wrote, again and again, and keeps what it holds', async () => {
    using dir = tempDir();
    cpSync(SKOPEO_LAYOUT, dir.path, { recursive: true });
    const marker = readFileSync(join(dir.path, 'oci-layout'), 'utf8');
    for (let i = 0; i < 2; i++) await OciLayoutWriter.open(dir.path);
    assert.equal(readFileSync(join(dir.path, 'oci-layout'), 'utf8'), marker);
    const layout = await OciLayoutWriter.open(dir.path);
    await layout.tag(manifest, 'other');
    const index = JSON.parse(readFileSync(join(dir.path, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    assert.deepEqual(index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']), ['latest', 'other']);
  });

  it('open makes blobs/ at once, and reports an oci-layout it cannot read as it is', async () => {
    using dir = tempDir();
    await OciLayoutWriter.open(join(dir.path, 'new'));
    assert.deepEqual(readdirSync(join(dir.path, 'new')).sort(), ['blobs', 'oci-layout']);
    mkdirSync(join(dir.path, 'odd', 'oci-layout'), { recursive: true });
    await assert.rejects(OciLayoutWriter.open(join(dir.path, 'odd')), { code: 'EISDIR', syscall: 'read' });
    mkdirSync(join(dir.path, 'bad'));
    writeFileSync(join(dir.path, 'bad', 'oci-layout'), 'not json');
    await assert.rejects(OciLayoutWriter.open(join(dir.path, 'bad')), (error: Error) => {
      assert.ok(error instanceof OciLayoutError);
      assert.equal(error.name, 'OciLayoutError');
      assert.equal(error.layout, join(dir.path, 'bad'));
      assert.equal(error.message, `OCI layout ${join(dir.path, 'bad')}: oci-layout says imageLayoutVersion undefined, not 1.x; refusing to write into it`);
      return true;
    });
  });

  it('hasBlob and blobSize: a file of that size, undefined for none or a directory; other errors thrown', async () => {
    using dir = tempDir();
    const layout = await OciLayoutWriter.open(dir.path);
    const { digest: stored, size } = await layout.writeBlobBytes(Buffer.from('twelve bytes'));
    assert.equal(await layout.blobSize(stored), 12);
    assert.equal(await layout.hasBlob(stored, size), true);
    assert.equal(await layout.hasBlob(stored, size + 1), false);
    assert.equal(await layout.hasBlob(digest(7), 12), false);
    mkdirSync(layout.blobPath(digest(8)));
    assert.equal(await layout.blobSize(digest(8)), undefined);
    writeFileSync(join(dir.path, 'blobs', 'sha512'), 'a file where a directory belongs');
    await assert.rejects(layout.blobSize(`sha512:${'a'.repeat(128)}`), { code: 'ENOTDIR' });
  });

  it('writeBlobBytes leaves a blob it has alone, and leaves no temporary file when the rename fails', async () => {
    using dir = tempDir();
    const layout = await OciLayoutWriter.open(dir.path);
    const data = Buffer.from('{"config":true}');
    const { digest: stored } = await layout.writeBlobBytes(data);
    const inode = statSync(layout.blobPath(stored)).ino;
    assert.deepEqual(await layout.writeBlobBytes(data), { digest: stored, size: data.length });
    assert.equal(statSync(layout.blobPath(stored)).ino, inode, 'the same file, not a new copy renamed over it');
    // A directory (not empty) where the blob goes: the rename fails.
    const blocked = Buffer.from('blocked');
    mkdirSync(join(layout.blobPath(digestOf(blocked, 'sha256')), 'inside'), { recursive: true });
    await assert.rejects(layout.writeBlobBytes(blocked), { syscall: 'rename' });
    assert.deepEqual(readdirSync(join(dir.path, 'blobs', 'sha256')).filter((name) => name.includes('.partial-')), []);
  });

  it('writeBlob: a rename that fails after the file closed fails the call, removes the temporary file, and does not hang', async () => {
    using dir = tempDir();
    const layout = await OciLayoutWriter.open(dir.path);
    const data = Buffer.from('layer');
    mkdirSync(join(layout.blobPath(sha256(data)), 'inside'), { recursive: true });
    const writing = layout.writeBlob(sha256(data), Readable.from([data]));
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('writeBlob hangs')), 5000).unref());
    await assert.rejects(Promise.race([writing, timeout]), { syscall: 'rename' });
    assert.deepEqual(readdirSync(join(dir.path, 'blobs', 'sha256')), [sha256(data).slice(7)]);
  });

  it('blobCompression closes the file it reads', async () => {
    using dir = tempDir();
    const layout = await OciLayoutWriter.open(dir.path);
    const { digest: stored } = await layout.writeBlobBytes(gzipSync(Buffer.from('x')));
    for (let i = 0; i < 20; i++) assert.equal(await layout.blobCompression(stored), 'gzip');
    assert.deepEqual(openFdsOn(layout.blobPath(stored)), []);
  });

  it('hasVerifiedBlob: true for the right bytes (any size for -1); a wrong size or wrong bytes removes the file', async () => {
    using dir = tempDir();
    const layout = await OciLayoutWriter.open(dir.path);
    const data = Buffer.from('verified bytes');
    const { digest: stored } = await layout.writeBlobBytes(data);
    assert.equal(await layout.hasVerifiedBlob(digest(3), -1), false, 'none stored');
    assert.equal(await layout.hasVerifiedBlob(stored, data.length), true);
    assert.equal(await layout.hasVerifiedBlob(stored, -1), true);
    assert.equal(await layout.hasVerifiedBlob(stored, data.length + 1), false, 'the right bytes, but not the size asked for');
    assert.equal(await layout.blobSize(stored), undefined, 'removed');
    await layout.writeBlobBytes(data);
    writeFileSync(layout.blobPath(stored), Buffer.from('VERIFIED BYTES'));
    assert.equal(await layout.hasVerifiedBlob(stored, data.length), false, 'damaged bytes of the right size');
    assert.equal(await layout.blobSize(stored), undefined, 'removed');
  });

  it('removeStaleTemporaries removes the temporaries of writers that are gone, and nothing else', async () => {
    using dir = tempDir();
    const layout = await OciLayoutWriter.open(dir.path);
    const dead = spawnSync('true').pid!; // exited and reaped
    const live = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const hex = sha256('x').slice(7);
      const blobs = join(dir.path, 'blobs', 'sha256');
      mkdirSync(blobs, { recursive: true });
      const stale = [join(blobs, `${hex}.partial-${dead}-0123abcd`), join(dir.path, `index.json.partial-${dead}-89abcdef`)];
      const kept = [
        join(blobs, `${hex}.partial-${process.pid}-0123abcd`), // this process's own
        join(blobs, `${hex}.partial-${live.pid}-0123abcd`), // another live writer's
        join(blobs, `${hex}.partial-${dead}-0123abcd.bak`),
        join(blobs, `${hex}.partial-${dead}-0123abc`),
        join(blobs, `${hex}.partial-${dead}-0123abcx`),
        join(blobs, `${hex}.partial-x${dead}-0123abcd`),
        join(blobs, hex),
      ];
      for (const path of [...stale, ...kept]) writeFileSync(path, '');
      writeFileSync(join(dir.path, 'blobs', 'stray'), 'a file in blobs/, not a directory');
      assert.equal(await layout.removeStaleTemporaries(), 2);
      for (const path of stale) assert.equal(existsSync(path), false, path);
      for (const path of kept) assert.equal(existsSync(path), true, path);
    } finally {
      live.kill();
    }
  });

  it('isRunning: this process and a live child yes, a reaped child no', () => {
    const live = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      assert.equal(isRunning(process.pid), true);
      assert.equal(isRunning(live.pid!), true);
      assert.equal(isRunning(spawnSync('true').pid!), false);
    } finally {
      live.kill();
    }
  });

  it('tag reports an index.json it cannot read as it is', async () => {
    using dir = tempDir();
    const layout = await OciLayoutWriter.open(dir.path);
    mkdirSync(join(dir.path, 'index.json'));
    await assert.rejects(layout.tag(manifest, 'v1'), { code: 'EISDIR', syscall: 'read' });
  });

  it('digestOf is the algorithm and the hex of the hash', () => {
    // sha256 of "abc" (FIPS 180-2, appendix B.1).
    assert.equal(digestOf(Buffer.from('abc'), 'sha256'), 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('blobPath refuses a digest with one character that is not lower-case hex, first or last, and says so', async () => {
    using dir = tempDir();
    const layout = await OciLayoutWriter.open(dir.path);
    for (const bad of [`sha256:A${'a'.repeat(63)}`, `sha256:${'a'.repeat(63)}A`]) {
      assert.throws(() => layout.blobPath(bad), { name: 'InvalidArgumentError', message: `"${bad}" is not a sha256 digest in lower-case hex` });
    }
  });
});

describe('indexWithTag', () => {
  const manifest = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digest(1), size: 1 };
  const tags = (text: string) => (JSON.parse(text) as { manifests: Descriptor[] }).manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']);

  it('takes every tag of image-spec`s ref.name grammar', () => {
    for (const tag of ['v1.23', 'x--y', 'a/b', 'a/bc', 'a/b.cd', 'a/b-c/d_e', 'r/x:1.0@a+b']) {
      assert.deepEqual(tags(indexWithTag('/l', undefined, manifest, tag)), [tag], tag);
    }
  });

  it('refuses what is not an image index, with a message saying which', () => {
    const refused = (existing: string, message: string) =>
      assert.throws(() => indexWithTag('/l', existing, manifest, 'v1'), (error: Error) => {
        assert.ok(error instanceof OciLayoutError, `${existing}: ${error}`);
        assert.equal(error.message, `OCI layout /l: ${message}`);
        return true;
      });
    for (const existing of ['null', '"text"', '42', '{"manifests":5}', '{"manifests":{}}']) refused(existing, 'index.json is not an image index (no "manifests" array)');
    refused('{not json', 'index.json is not JSON');
    assert.throws(() => indexWithTag('/l', '{not json', manifest, 'v1'), (error: Error) => error.cause instanceof SyntaxError);
  });

  it('an index without "manifests" gets one, with only the tag', () => {
    const text = indexWithTag('/l', '{"schemaVersion":2,"annotations":{"k":"v"}}', manifest, 'v1');
    assert.deepEqual(JSON.parse(text), {
      schemaVersion: 2,
      annotations: { k: 'v' },
      manifests: [{ ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }],
    });
  });
});

describe('image-manifest, each rule', () => {
  const nd = 'application/vnd.oci.image.layer.nondistributable.v1.tar';
  const foreign = 'application/vnd.docker.image.rootfs.foreign.diff.tar';

  it('layerMediaType: whole media types only, every non-distributable spelling', () => {
    for (const other of [`x${OCI}+gzip`, `x${nd}+gzip`, `${nd}+gzip+encrypted`, `${foreign}.gzip+encrypted`]) {
      assert.equal(layerMediaType(other, 'none'), other, other);
      assert.equal(layerMediaType(other, 'gzip'), other, other);
    }
    for (const declared of [nd, `${nd}+gzip`, `${nd}+zstd`, foreign, `${foreign}.gzip`, `${foreign}.zstd`]) {
      assert.equal(layerMediaType(declared, 'gzip'), `${nd}+gzip`, declared);
      assert.equal(layerMediaType(declared, 'zstd'), `${nd}+zstd`, declared);
      assert.equal(layerMediaType(declared, 'none'), nd, declared);
    }
  });

  it('servedLayers: the same digest served with another known size replaces the layer', () => {
    const layer: Descriptor = { mediaType: `${OCI}+gzip`, digest: digest(1), size: 10 };
    const result = servedLayers([layer], [{ digest: digest(1), size: 11, mediaType: OCI }]);
    assert.deepEqual(result.layers, [{ mediaType: OCI, digest: digest(1), size: 11 }]);
    assert.deepEqual(result.changes, [`layer 0: the source serves ${digest(1)} (11 bytes) instead of ${digest(1)} (10 bytes)`]);
  });

  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest(9), size: 90 },
    layers: [
      { mediaType: OCI, digest: digest(1), size: 10 },
      { mediaType: OCI, digest: digest(2), size: 20 },
    ],
  };
  const raw = Buffer.from(JSON.stringify(manifest, null, 1));

  it('writtenManifest names the compression found in words', () => {
    const result = writtenManifest(raw, manifest, manifest.config, [
      { descriptor: manifest.layers[0]!, compression: 'gzip' },
      { descriptor: manifest.layers[1]!, compression: 'zstd' },
    ]);
    assert.deepEqual(result.changes, [
      `layer 0 (${digest(1)}) is gzip: written as ${OCI}+gzip, not ${OCI}`,
      `layer 1 (${digest(2)}) is zstd: written as ${OCI}+zstd, not ${OCI}`,
    ]);
  });

  it('writtenManifest with fewer layers than the manifest is a new manifest, not the source`s bytes', () => {
    const result = writtenManifest(raw, manifest, manifest.config, [{ descriptor: manifest.layers[0]!, compression: 'none' }]);
    assert.notEqual(result.raw, raw);
    assert.deepEqual((JSON.parse(result.raw.toString('utf8')) as ImageManifest).layers, [manifest.layers[0]]);
  });
});
