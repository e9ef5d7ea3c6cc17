/**
 * `containers-image-proxy pull` from every kind of source, through the built
 * bin against real skopeo: OCI layouts, Docker schema 2 `dir:` and
 * `docker-archive:`, a real registry holding Docker schema 2 and OCI
 * manifests, and `containers-storage:`. Each written layout is checked by
 * independent tools: `skopeo inspect`, `skopeo copy` (which verifies every
 * digest) and `umoci unpack`, whose root filesystem must equal umoci's
 * unpacking of the original OCI image.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { detectCompression } from '../src/decompress.js';
import type { ImageManifest } from '../src/index.js';
import { dockerDirImage } from './support/docker.js';
import { SKOPEO, skopeo, tempDir } from './support/env.js';
import { addToIndex, blobPath, buildImage, noise, sha256, writeBlob, type BuiltImage, type LayerSpec } from './support/oci-layout.js';
import { startRegistry, type TestRegistry } from './support/registry.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');
const scratch = tempDir('cip-pull-test-');

/** gzip, uncompressed, gzip; whiteouts, an opaque dir, a symlink, a hardlink, modes. */
const LAYERS: LayerSpec[] = [
  {
    entries: [
      { type: 'dir', name: 'bin/' },
      { type: 'dir', name: 'etc/' },
      { type: 'dir', name: 'opt/' },
      { type: 'file', name: 'etc/config', content: 'v1\n', mode: 0o600 },
      { type: 'file', name: 'etc/obsolete', content: 'gone\n' },
      { type: 'file', name: 'opt/old-a', content: 'a\n' },
      { type: 'file', name: 'bin/tool', content: '#!/bin/sh\necho tool\n', mode: 0o755 },
      { type: 'file', name: 'data-0.bin', content: noise(150_000, 7) },
    ],
  },
  {
    compression: 'none',
    entries: [
      { type: 'dir', name: 'etc/' },
      { type: 'dir', name: 'opt/' },
      { type: 'dir', name: 'bin/' },
      { type: 'file', name: 'etc/.wh.obsolete', content: '' },
      { type: 'file', name: 'opt/.wh..wh..opq', content: '' },
      { type: 'file', name: 'opt/fresh', content: 'fresh\n' },
      { type: 'symlink', name: 'bin/alias', target: 'tool' },
      { type: 'file', name: 'data-1.bin', content: noise(120_000, 8) },
    ],
  },
  {
    entries: [
      { type: 'dir', name: 'etc/' },
      { type: 'dir', name: 'bin/' },
      { type: 'file', name: 'etc/config', content: 'v3\n', mode: 0o644 },
      { type: 'hardlink', name: 'bin/tool-link', target: 'bin/tool' },
    ],
  },
];

const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
const MEDIA_TYPE = { none: OCI_LAYER, gzip: `${OCI_LAYER}+gzip`, zstd: `${OCI_LAYER}+zstd` } as const;

let source: BuiltImage;
/** The same image with a config that is not in Go's canonical JSON form (indented, an extra field). */
let odd: { reference: string; manifestDigest: string; config: Buffer };
/** umoci's unpacking of the original OCI image. */
let expectedRootfs: Record<string, string>;
let dockerDir: string;
let dockerArchive: string;
let registry: TestRegistry;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Run {
  const result = spawnSync(process.execPath, [BIN, ...args, '--skopeo', SKOPEO], { timeout: 120_000, encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function ok(run: Run): Run {
  assert.equal(run.status, 0, `exit ${run.status}: ${run.stderr}`);
  return run;
}

/** Every entry of a tree: kind, owner, mode, content digest or link target. */
function snapshot(dir: string, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const rel = prefix + name;
    const stat = lstatSync(path);
    const meta = `${stat.uid}:${stat.gid} ${(stat.mode & 0o7777).toString(8)}`;
    if (stat.isSymbolicLink()) out[rel] = `symlink ${readlinkSync(path)}`;
    else if (stat.isDirectory()) {
      out[`${rel}/`] = `dir ${meta}`;
      Object.assign(out, snapshot(path, `${rel}/`));
    } else if (stat.isFile()) out[rel] = `file ${meta} nlink=${stat.nlink} ${sha256(readFileSync(path))}`;
    else out[rel] = `other ${stat.mode.toString(8)}`;
  }
  return out;
}

/** `umoci unpack` of `layout:tag` (as root, else --rootless), snapshotted. */
function umociRootfs(layout: string, tag: string): Record<string, string> {
  const bundle = join(scratch.path, `bundle-${createHash('sha256').update(`${layout}:${tag}:${Math.random()}`).digest('hex').slice(0, 12)}`);
  const rootless = process.getuid?.() === 0 ? [] : ['--rootless'];
  execFileSync('umoci', ['unpack', ...rootless, '--image', `${layout}:${tag}`, bundle], { stdio: ['ignore', 'ignore', 'pipe'] });
  return snapshot(join(bundle, 'rootfs'));
}

function head(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(4);
    return buffer.subarray(0, readSync(fd, buffer, 0, 4, 0));
  } finally {
    closeSync(fd);
  }
}

/** The digest `skopeo inspect` reports for a source: the manifest as the source stores it. */
function sourceDigest(reference: string, ...flags: string[]): string {
  return (JSON.parse(skopeo('inspect', ...flags, reference)) as { Digest: string }).Digest;
}

interface Written {
  digest: string;
  manifest: ImageManifest;
}

/**
 * Proves `layout:tag` is a valid OCI layout describing what it holds:
 * skopeo inspects it and copies it (verifying every digest and size), each
 * layer's media type names the compression its bytes have, the config is the
 * blob the manifest names, and umoci unpacks the same root filesystem as
 * from the original OCI image.
 */
function assertValidLayout(layout: string, tag: string): Written {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; size: number; annotations?: Record<string, string> }> };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(entry, `index.json has no entry tagged ${tag}`);
  const raw = readFileSync(blobPath(layout, entry.digest));
  assert.equal(sha256(raw), entry.digest);
  assert.equal(raw.length, entry.size);
  const manifest = JSON.parse(raw.toString('utf8')) as ImageManifest;

  const inspected = JSON.parse(skopeo('inspect', `oci:${layout}:${tag}`)) as { Digest: string; Layers: string[] };
  assert.equal(inspected.Digest, entry.digest);
  assert.deepEqual(inspected.Layers, manifest.layers.map((l) => l.digest));
  skopeo('copy', '--quiet', `oci:${layout}:${tag}`, `dir:${join(scratch.path, `copy-${entry.digest.slice(7, 19)}-${Math.random().toString(36).slice(2)}`)}`);

  const config = readFileSync(blobPath(layout, manifest.config.digest));
  assert.equal(sha256(config), manifest.config.digest);
  assert.equal(config.length, manifest.config.size);
  for (const [i, layer] of manifest.layers.entries()) {
    const bytes = blobPath(layout, layer.digest);
    assert.equal(lstatSync(bytes).size, layer.size, `layer ${i} size`);
    assert.equal(layer.mediaType, MEDIA_TYPE[detectCompression(head(bytes))], `layer ${i}: the media type must name the compression of the bytes written`);
  }
  assert.deepEqual(umociRootfs(layout, tag), expectedRootfs);
  return { digest: entry.digest, manifest };
}

/** The one line `pull` prints when the manifest it wrote is not the source's. */
function assertNewManifestLine(stderr: string, written: string, from: string): void {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0]!, /^containers-image-proxy: /);
  assert.ok(lines[0]!.includes(`wrote manifest ${written}`), lines[0]);
  assert.ok(lines[0]!.includes(from), `names the source's digest: ${lines[0]}`);
}

before(async () => {
  const layout = join(scratch.path, 'oci');
  source = buildImage(layout, 'v1', LAYERS);
  const manifest = JSON.parse(readFileSync(source.manifestPath, 'utf8')) as ImageManifest;
  const sourceConfig = JSON.parse(readFileSync(blobPath(layout, source.configDigest), 'utf8')) as Record<string, unknown>;
  const oddConfig = Buffer.from(JSON.stringify({ 'moby.buildkit.buildinfo.v1': 'e30=', ...sourceConfig }, null, 2));
  const oddManifest = Buffer.from(JSON.stringify({ ...manifest, config: { ...manifest.config, digest: writeBlob(layout, oddConfig), size: oddConfig.length } }));
  const oddDigest = writeBlob(layout, oddManifest);
  addToIndex(layout, { mediaType: manifest.mediaType, digest: oddDigest, size: oddManifest.length }, 'odd');
  odd = { reference: `oci:${layout}:odd`, manifestDigest: oddDigest, config: oddConfig };

  expectedRootfs = umociRootfs(layout, 'v1');
  assert.ok(expectedRootfs['bin/alias'] && expectedRootfs['opt/fresh'] && !expectedRootfs['etc/obsolete'], 'the reference rootfs is the whole image');

  dockerDir = join(scratch.path, 'docker-dir');
  dockerDirImage(source.reference, dockerDir);
  dockerArchive = join(scratch.path, 'docker.tar');
  skopeo('copy', '--quiet', `dir:${dockerDir}`, `docker-archive:${dockerArchive}:example/app:v1`);

  registry = await startRegistry();
  await registry.push(`dir:${dockerDir}`, 'app:v2s2');
  await registry.push(odd.reference, 'app:oci');
  const mediaTypeOf = async (tag: string) => (JSON.parse((await registry.rawManifest(tag)).toString('utf8')) as { mediaType: string }).mediaType;
  assert.equal(await mediaTypeOf('app:v2s2'), 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(await mediaTypeOf('app:oci'), 'application/vnd.oci.image.manifest.v1+json');
});

after(async () => {
  await registry?.stop();
  scratch[Symbol.dispose]();
});

describe('pull: OCI sources keep their manifest', () => {
  it('oci: with a config GetFullConfig re-serialises: the original config and manifest digest are kept', () => {
    const out = join(scratch.path, 'from-oci');
    const run = ok(cli('pull', odd.reference, out));
    assert.equal(run.stderr, '', 'nothing to say: the manifest is the source`s');
    const written = assertValidLayout(out, 'odd');
    assert.equal(written.digest, odd.manifestDigest);
    assert.deepEqual(readFileSync(blobPath(out, written.manifest.config.digest)), odd.config);
  });

  it('docker:// with an OCI manifest: the manifest digest is kept', () => {
    const out = join(scratch.path, 'from-registry-oci');
    const reference = registry.reference('app:oci');
    const run = ok(cli('pull', reference, out, '--tls-verify=false'));
    assert.equal(run.stderr, '');
    const written = assertValidLayout(out, 'oci');
    assert.equal(written.digest, sourceDigest(reference, '--tls-verify=false'));
    assert.deepEqual(readFileSync(blobPath(out, written.manifest.config.digest)), odd.config);
  });
});

describe('pull: Docker schema 2 sources', () => {
  it('dir: written by skopeo copy --format v2s2, with a Docker Engine config', () => {
    const out = join(scratch.path, 'from-dir');
    const run = ok(cli('pull', `dir:${dockerDir}`, out, '--tag', 'v1'));
    const written = assertValidLayout(out, 'v1');
    assert.deepEqual(written.manifest.layers.map((l) => l.mediaType), [MEDIA_TYPE.gzip, MEDIA_TYPE.none, MEDIA_TYPE.gzip]);
    assert.deepEqual(written.manifest.layers.map((l) => l.digest), source.layers.map((l) => l.digest));
    assertNewManifestLine(run.stderr, written.digest, sourceDigest(`dir:${dockerDir}`));
  });

  it('docker-archive: its layers are plain tar whatever the converted manifest says', () => {
    const out = join(scratch.path, 'from-archive');
    const reference = `docker-archive:${dockerArchive}`;
    const run = ok(cli('pull', reference, out, '--tag', 'v1'));
    const written = assertValidLayout(out, 'v1');
    assert.deepEqual(written.manifest.layers.map((l) => l.mediaType), [MEDIA_TYPE.none, MEDIA_TYPE.none, MEDIA_TYPE.none]);
    assert.deepEqual(written.manifest.layers.map((l) => l.digest), source.layers.map((l) => l.diffId));
    const from = sourceDigest(reference);
    assertNewManifestLine(run.stderr, written.digest, from);

    // --json: the same news as an event; --quiet: nothing at all.
    const json = ok(cli('pull', reference, join(scratch.path, 'from-archive-json'), '--tag', 'v1', '--json'));
    const events = json.stderr.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const event = events.find((e) => e.event === 'manifest');
    assert.ok(event, json.stderr);
    assert.equal(event.digest, written.digest);
    assert.equal(event.sourceDigest, from);
    assert.equal(event.changed, true);
    assert.ok(Array.isArray(event.changes) && event.changes.length > 0);
    assert.equal(ok(cli('pull', reference, join(scratch.path, 'from-archive-quiet'), '--quiet')).stderr, '');
  });

  it('docker:// with a Docker schema 2 manifest', () => {
    const out = join(scratch.path, 'from-registry-v2s2');
    const reference = registry.reference('app:v2s2');
    const run = ok(cli('pull', reference, out, '--tls-verify=false'));
    const written = assertValidLayout(out, 'v2s2');
    // skopeo compressed the uncompressed layer when it pushed.
    assert.deepEqual(written.manifest.layers.map((l) => l.mediaType), [MEDIA_TYPE.gzip, MEDIA_TYPE.gzip, MEDIA_TYPE.gzip]);
    assertNewManifestLine(run.stderr, written.digest, sourceDigest(reference, '--tls-verify=false'));
  });
});

describe('pull: containers-storage (the blobs it serves are not the manifest`s)', () => {
  it('copies the uncompressed layers the store serves, described by a new manifest', () => {
    const store = join(scratch.path, 'storage');
    const reference = `containers-storage:[vfs@${store}/root+${store}/run]localhost/app:v1`;
    // Seeded by the system's skopeo: containers-storage re-executes its own
    // binary to apply layers, which the matrix's loader-run releases cannot.
    execFileSync('skopeo', ['copy', '--quiet', source.reference, reference], { stdio: ['ignore', 'ignore', 'pipe'] });
    const out = join(scratch.path, 'from-storage');
    // On protocol 0.2.3 (no GetLayerInfo) the layers are the config's diff_ids, their sizes learnt as they are fetched.
    // skopeo 1.9.3 leaves a copy of each blob served from a store in its tmpdir: keep them out of /var/tmp.
    const run = ok(cli('pull', reference, out, '--tmpdir', scratch.path));
    const written = assertValidLayout(out, 'v1');
    assert.deepEqual(written.manifest.layers.map((l) => l.digest), source.layers.map((l) => l.diffId));
    assert.deepEqual(written.manifest.layers.map((l) => l.mediaType), [MEDIA_TYPE.none, MEDIA_TYPE.none, MEDIA_TYPE.none]);
    assertNewManifestLine(run.stderr, written.digest, source.manifestDigest);
  });
});
