/**
 * podman's local store (`containers-storage:`) as a source, on the skopeo
 * release chosen by $SKOPEO. Every test uses a private store under its temp
 * dir, named `containers-storage:[vfs@ROOT+RUNROOT]NAME:TAG`, never the
 * machine's default store. The store keeps layers uncompressed: it serves
 * the config's diff_ids, not the gzip blobs its manifest names.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { ImageNotFoundError, ImageProxy, RequestError, type BlobTransfer, type ImageManifest } from '../src/index.js';
import { baseConfig, eventually, SKOPEO, skopeo, tempDir } from './support/env.js';
import { blobPath, buildImage, noise, sha256, type BuiltImage, type LayerSpec } from './support/oci-layout.js';
import { RELEASE, TRANSFERS } from './support/skopeo-release.js';
import { assertSameTree, snapshot } from './support/tree.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

const scratch = tempDir('cip-storage-test-');

/** Three gzip layers: the root's own entry, whiteouts, an opaque dir, a symlink, a hardlink, modes. */
const LAYERS: LayerSpec[] = [
  {
    entries: [
      { type: 'dir', name: './', mode: 0o755 },
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
      { type: 'file', name: 'etc/config', content: 'v3\n', mode: 0o4755 },
      { type: 'hardlink', name: 'bin/tool-link', target: 'bin/tool' },
    ],
  },
];

/** A private store: `[vfs@ROOT+RUNROOT]`. */
const ROOT = join(scratch.path, 'store', 'root');
const RUNROOT = join(scratch.path, 'store', 'run');
const NAME = 'localhost/app:v1';
/**
 * skopeo's temporary files (--tmpdir): skopeo 1.9.3 leaves a copy of every
 * blob it serves from a store there (see the tmpDir test), never in /var/tmp.
 */
const SKOPEO_TMP = join(scratch.path, 'skopeo-tmp');

function inStore(name: string, driver = 'vfs', root = ROOT, runroot = RUNROOT): string {
  return `containers-storage:[${driver}@${root}+${runroot}]${name}`;
}

const TAR = 'application/vnd.oci.image.layer.v1.tar';

let source: BuiltImage;
/** The image in the private store. */
let reference: string;
/** Each layer's uncompressed tar: what the store serves. */
let tars: Buffer[];
/** Whether the skopeo under test has GetLayerInfo (0.2.5): else the store's layer sizes are unknown until fetched. */
let listsLayerSizes: boolean;

interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** The built CLI with the skopeo under test. */
function cli(...args: string[]): Run {
  const result = spawnSync(process.execPath, [BIN, ...args, '--skopeo', SKOPEO, '--tmpdir', SKOPEO_TMP], { timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.toString() };
}

function ok(run: Run): Run {
  assert.equal(run.status, 0, `exit ${run.status}: ${run.stderr}`);
  return run;
}

/** The library's config for the skopeo under test, with the private temporary directory. */
function config(): ReturnType<typeof baseConfig> {
  return baseConfig({ tmpDir: SKOPEO_TMP });
}

before(async () => {
  mkdirSync(SKOPEO_TMP);
  source = buildImage(join(scratch.path, 'oci'), 'v1', LAYERS);
  tars = source.layers.map((layer) => gunzipSync(readFileSync(layer.path)));
  reference = inStore(NAME);
  // Seeded by the system's skopeo: containers-storage re-executes its own
  // binary to apply layers, which the matrix's loader-run releases cannot.
  execFileSync('skopeo', ['copy', '--quiet', source.reference, reference], { stdio: ['ignore', 'ignore', 'pipe'] });
  listsLayerSizes = RELEASE.getLayerInfo;
});

after(() => {
  unmountBelow(scratch.path);
  scratch[Symbol.dispose]();
});

/**
 * Opening a vfs store with another driver (overlay) creates that driver's
 * directories and leaves a bind mount on ROOT/overlay: unmount everything
 * below `dir`, deepest first, before removing it.
 */
function unmountBelow(dir: string): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4]?.replace(/\\(\d{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))))
    .filter((point): point is string => point !== undefined && point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of mounts) execFileSync('umount', ['-l', point]);
}

describe('containers-storage: missing images and other stores', () => {
  it('openImageOptional: an image that is not in the store is null, on every release', async () => {
    await using proxy = await ImageProxy.spawn(config());
    assert.equal(await proxy.openImageOptional(inStore('localhost/app:missing')), null, 'a tag the store lacks');
    assert.equal(await proxy.openImageOptional(inStore('localhost/nothere:v1')), null, 'a name the store lacks');
    const empty = join(scratch.path, 'empty-store');
    assert.equal(await proxy.openImageOptional(inStore(NAME, 'vfs', `${empty}/root`, `${empty}/run`)), null, 'an empty store');
    // The image is there: openImageOptional finds it.
    const image = await proxy.openImageOptional(reference);
    assert.ok(image);
    await image.close();
  });

  it('openImage: an image stored with another driver is not found, and the error shows the [DRIVER@ROOT+RUNROOT] form', async () => {
    await using proxy = await ImageProxy.spawn(config());
    const overlay = inStore(NAME, 'overlay');
    const error = await proxy.openImage(overlay).then(
      () => assert.fail('an image pulled with vfs must not be found through the overlay driver'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ImageNotFoundError, String(error));
    assert.equal(error.reference, overlay);
    assert.match(error.serverMessage, /does not resolve to an image ID/);
    assert.match(error.message, /may be in another store or storage driver/);
    assert.ok(error.message.includes(`containers-storage:[vfs@${ROOT}+${RUNROOT}]${NAME}`), error.message);
    assert.equal(await proxy.openImageOptional(overlay), null, 'and openImageOptional says it is not there');
  });
});

describe('containers-storage: the blobs the store serves', () => {
  it('getLayerInfo and getLayerDiffIds name the uncompressed layers (the diff_ids), in order', async () => {
    await using proxy = await ImageProxy.spawn(config());
    await using image = await proxy.openImage(reference);
    const layers = await proxy.getLayerDiffIds(image);
    const diffIds = source.layers.map((layer) => layer.diffId);
    assert.deepEqual(layers.map((layer) => layer.digest), diffIds);
    assert.deepEqual(layers.map((layer) => layer.diffId), diffIds);
    assert.deepEqual(layers.map((layer) => layer.mediaType), [TAR, TAR, TAR]);
    // Before GetLayerInfo (0.2.5) nothing tells the uncompressed sizes: they are learnt when fetched.
    const sizes = RELEASE.getLayerInfo ? tars.map((tar) => tar.length) : [-1, -1, -1];
    assert.deepEqual(layers.map((layer) => layer.size), sizes);
    assert.deepEqual(await proxy.getLayerInfo(image), layers.map(({ digest, size, mediaType }) => ({ digest, size, mediaType })));
    for (const [i, layer] of layers.entries()) {
      const stream = await proxy.getBlob(image, layer.digest, layer.size);
      const bytes = await buffer(stream);
      assert.equal(sha256(bytes), layer.diffId, `layer ${i}`);
      assert.equal(stream.expectedSize, tars[i]!.length, `layer ${i}: the stream knows the size once the proxy answered`);
    }
  });

  it('getBlob with the size unknown: the proxy tells it, the digest is verified, with every transfer', async () => {
    await using proxy = await ImageProxy.spawn(config());
    await using image = await proxy.openImage(reference);
    const transfers: BlobTransfer[] = [...TRANSFERS];
    for (const transfer of transfers) {
      for (const [i, layer] of source.layers.entries()) {
        for (const size of [undefined, -1]) {
          const stream = await proxy.getBlob(image, layer.diffId, size, { transfer });
          assert.equal(stream.transfer, transfer);
          assert.equal(stream.expectedSize, tars[i]!.length);
          assert.deepEqual(await buffer(stream), tars[i], `${transfer}, layer ${i}, size ${size}`);
        }
      }
    }
    // Not only for the store: an OCI layout's compressed blob, size unknown.
    await using layout = await proxy.openImage(source.reference);
    const stream = await proxy.getBlob(layout, source.layers[0]!.digest);
    assert.deepEqual(await buffer(stream), readFileSync(source.layers[0]!.path));
    // And the proxy still works after all of those.
    assert.equal((await proxy.fetchManifest(image)).digest, source.manifestDigest);
  });

  it('a compressed digest from the manifest: the error says the store serves the diff_ids', async () => {
    await using proxy = await ImageProxy.spawn(config());
    await using image = await proxy.openImage(reference);
    const { manifest } = await proxy.fetchManifest(image);
    assert.deepEqual(manifest.layers.map((layer) => layer.digest), source.layers.map((layer) => layer.digest), 'GetManifest: the manifest as pulled');
    const layer = manifest.layers[0]!;
    const error = await proxy.getBlob(image, layer.digest, layer.size).then(
      (stream) => buffer(stream).then(() => assert.fail('the store does not hold the gzip blob')),
      (e: unknown) => e,
    );
    assert.ok(error instanceof RequestError, String(error));
    assert.match(error.serverMessage, /locating item named/);
    assert.match(error.message, /keeps layers uncompressed and serves them under their diff_ids/);
  });
});

describe('containers-storage: extract', () => {
  it('extract from the store equals extract of the same image from its oci: source, entry by entry', () => {
    const fromStore = join(scratch.path, 'rootfs-store');
    const fromLayout = join(scratch.path, 'rootfs-oci');
    ok(cli('extract', reference, fromStore));
    ok(cli('extract', source.reference, fromLayout));
    const expected = snapshot(fromLayout);
    assert.ok(expected.get('bin/alias') && expected.get('opt/fresh') && !expected.has('etc/obsolete') && !expected.has('opt/old-a'), 'the whole image, whiteouts applied');
    assertSameTree(snapshot(fromStore), expected, 'extract from containers-storage vs from oci:');
  });

  it('extract --layer takes the layers the store serves, by index or by their digest (the diff_id)', () => {
    const dir = join(scratch.path, 'rootfs-store-layers');
    // Layer 2 hardlinks to a file of layer 0.
    ok(cli('extract', reference, dir, '--layer', '0', '--layer', source.layers[2]!.diffId));
    assert.equal(readFileSync(join(dir, 'etc', 'config'), 'utf8'), 'v3\n');
    assert.equal(readFileSync(join(dir, 'etc', 'obsolete'), 'utf8'), 'gone\n', 'layer 1 (its whiteout) was not applied');
  });
});

/** `umoci unpack` of `layout:tag` (as root, else --rootless): the rootfs directory. */
function umociUnpack(layout: string, tag: string, bundle: string): string {
  const rootless = process.getuid?.() === 0 ? [] : ['--rootless'];
  execFileSync('umoci', ['unpack', ...rootless, '--image', `${layout}:${tag}`, bundle], { stdio: ['ignore', 'ignore', 'pipe'] });
  return join(bundle, 'rootfs');
}

describe('containers-storage: pull', () => {
  it('pull writes an OCI layout of the blobs the store serves: skopeo and umoci read it, and it unpacks as the oci: source does', () => {
    const out = join(scratch.path, 'pulled');
    const run = ok(cli('pull', reference, out));
    // The tag of NAME:TAG; a new manifest (uncompressed layers), said in one line.
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; size: number; annotations?: Record<string, string> }> };
    assert.deepEqual(index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']), ['v1']);
    const entry = index.manifests[0]!;
    assert.notEqual(entry.digest, source.manifestDigest);
    assert.match(run.stderr.trim(), new RegExp(`^containers-image-proxy: wrote manifest ${entry.digest}, not the source's ${source.manifestDigest}: `));
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);

    const raw = readFileSync(blobPath(out, entry.digest));
    assert.equal(sha256(raw), entry.digest);
    const manifest = JSON.parse(raw.toString('utf8')) as ImageManifest;
    assert.equal(manifest.config.digest, source.configDigest, 'the config is the source`s own blob');
    assert.deepEqual(
      manifest.layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
      source.layers.map((layer, i) => ({ mediaType: TAR, digest: layer.diffId, size: tars[i]!.length })),
      'each layer is the uncompressed blob written, with its real size (learnt while fetching on 0.2.3)',
    );
    for (const layer of manifest.layers) assert.equal(sha256(readFileSync(blobPath(out, layer.digest))), layer.digest);

    // Independent readers: skopeo inspects it and copies it (verifying every digest and size) ...
    const inspected = JSON.parse(skopeo('inspect', `oci:${out}:v1`)) as { Digest: string; Layers: string[] };
    assert.equal(inspected.Digest, entry.digest);
    assert.deepEqual(inspected.Layers, source.layers.map((layer) => layer.diffId));
    skopeo('copy', '--quiet', `oci:${out}:v1`, `dir:${join(scratch.path, 'pulled-copy')}`);
    // ... and umoci unpacks it to what it unpacks from the original oci: image.
    const expected = snapshot(umociUnpack(source.layout, source.tag, join(scratch.path, 'bundle-oci')));
    assert.ok(expected.get('bin/alias') && expected.get('opt/fresh') && !expected.has('etc/obsolete'), 'the whole image');
    assertSameTree(snapshot(umociUnpack(out, 'v1', join(scratch.path, 'bundle-pulled'))), expected, 'umoci unpack of the pull from containers-storage vs of the oci: source');
  });

  it('pull --to-devnull fetches and verifies every blob the store serves', () => {
    const run = ok(cli('pull', reference, '--to-devnull', '--json'));
    const events = run.stderr.trim().split('\n').map((line) => JSON.parse(line) as { event: string; digest: string; role: 'config' | number; bytes: number; size: number });
    const done = new Map(events.filter((e) => e.event === 'blob-done').map((e) => [e.digest, e.bytes]));
    for (const [i, layer] of source.layers.entries()) assert.equal(done.get(layer.diffId), tars[i]!.length, `layer ${i}`);
    // Blobs are fetched several at a time, largest first: put the starts back in layer order.
    const starts = events.filter((e) => e.event === 'blob-start' && e.role !== 'config').sort((a, b) => Number(a.role) - Number(b.role));
    assert.deepEqual(
      starts.map((e) => e.size),
      listsLayerSizes ? tars.map((tar) => tar.length) : [-1, -1, -1],
      'a size not known before the transfer is -1',
    );
  });
});

describe('containers-storage: inspect, layers, blob through the CLI', () => {
  it('inspect: the manifest as pulled (its digest, the gzip layers) and the config', () => {
    const out = JSON.parse(ok(cli('inspect', reference, '--config')).stdout.toString()) as {
      digest: string;
      manifest: ImageManifest;
      config: { rootfs: { diff_ids: string[] } };
    };
    assert.equal(out.digest, source.manifestDigest);
    assert.deepEqual(out.manifest.layers.map((layer) => layer.digest), source.layers.map((layer) => layer.digest));
    assert.deepEqual(out.config.rootfs.diff_ids, source.layers.map((layer) => layer.diffId));
  });

  it('layers: the blobs the store serves, their size null where the proxy cannot tell it before fetching', () => {
    const out = JSON.parse(ok(cli('layers', reference)).stdout.toString()) as Array<Record<string, unknown>>;
    assert.deepEqual(
      out,
      source.layers.map((layer, i) => ({ index: i, digest: layer.diffId, size: listsLayerSizes ? tars[i]!.length : null, mediaType: TAR, diffId: layer.diffId })),
    );
  });

  it('blob: a layer by its diff_id, to a file and to stdout, without --size', () => {
    const file = join(scratch.path, 'layer-1.tar');
    ok(cli('blob', reference, source.layers[1]!.diffId, '-o', file));
    assert.deepEqual(readFileSync(file), tars[1]);
    assert.deepEqual(ok(cli('blob', reference, source.layers[0]!.diffId)).stdout, tars[0]);
    assert.deepEqual(ok(cli('blob', reference, source.configDigest)).stdout, readFileSync(blobPath(source.layout, source.configDigest)));
  });

  it('blob: a compressed digest from the manifest fails and says the store serves the diff_ids', () => {
    const file = join(scratch.path, 'gzip-layer');
    const run = cli('blob', reference, source.layers[0]!.digest, '-o', file);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /^containers-image-proxy: error: Get(Raw)?Blob failed: locating item named .*keeps layers uncompressed and serves them under their diff_ids/);
    assert.ok(!readdirSync(scratch.path).includes('gzip-layer'), 'no file is left');
  });
});

describe('containers-storage: reference forms and skopeo`s temporary files', () => {
  it('NAME:TAG, NAME@MANIFEST-DIGEST, the image ID and a short ID all open the image, each with the store named', async () => {
    await using proxy = await ImageProxy.spawn(config());
    const id = source.configDigest.slice('sha256:'.length);
    for (const name of [NAME, `localhost/app@${source.manifestDigest}`, id, id.slice(0, 12)]) {
      await using image = await proxy.openImage(inStore(name));
      assert.equal((await proxy.fetchManifest(image)).digest, source.manifestDigest, name);
      assert.deepEqual((await proxy.getLayerInfo(image)).map((layer) => layer.digest), source.layers.map((layer) => layer.diffId), name);
    }
    // Through the CLI too: the reference reaches skopeo as it was given.
    const layers = JSON.parse(ok(cli('layers', inStore(`localhost/app@${source.manifestDigest}`))).stdout.toString()) as Array<{ digest: string }>;
    assert.deepEqual(layers.map((layer) => layer.digest), source.layers.map((layer) => layer.diffId));
  });

  it('tmpDir: nothing is left after close; skopeo 1.9.3 (protocol 0.2.3) leaves a copy of each blob it served', async () => {
    const tmp = join(scratch.path, 'tmpdir-check');
    mkdirSync(tmp);
    const proxy = await ImageProxy.spawn(baseConfig({ tmpDir: tmp }));
    const image = await proxy.openImage(reference);
    for (const layer of await proxy.getLayerInfo(image)) await buffer(await proxy.getBlob(image, layer.digest, layer.size));
    await image.close();
    const leaky = proxy.protocolVersion === '0.2.3';
    await proxy.close();
    const left = readdirSync(tmp);
    if (!leaky) {
      assert.deepEqual(left, [], 'skopeo removed its temporary files');
      return;
    }
    // skopeo before PR #1837 never closes a store blob's reader, whose temporary copy stays (README).
    const sizes = left.map((name) => statSync(join(tmp, name)).size).sort((a, b) => a - b);
    assert.deepEqual(sizes, tars.map((tar) => tar.length).sort((a, b) => a - b));
  });
});

describe('containers-storage: an image built locally (buildah), whose manifest names the uncompressed layers it stores', () => {
  let built: string;
  before(() => {
    // Two layers, committed uncompressed into the same private store.
    const buildah = (...args: string[]): string =>
      execFileSync('buildah', ['--root', ROOT, '--runroot', RUNROOT, '--storage-driver', 'vfs', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    const files = join(scratch.path, 'buildah-files');
    mkdirSync(join(files, 'one', 'etc'), { recursive: true });
    mkdirSync(join(files, 'two', 'etc'), { recursive: true });
    writeFileSync(join(files, 'one', 'etc', 'base'), 'base\n');
    writeFileSync(join(files, 'two', 'etc', 'app'), noise(40_000, 9));
    const first = buildah('from', 'scratch');
    buildah('copy', first, join(files, 'one'), '/');
    buildah('commit', '--quiet', first, 'localhost/built-base:v1');
    buildah('rm', first);
    const second = buildah('from', 'localhost/built-base:v1');
    buildah('copy', second, join(files, 'two'), '/');
    buildah('commit', '--quiet', second, 'localhost/built:v1');
    buildah('rm', second);
    built = inStore('localhost/built:v1');
  });

  it('its layers are the manifest`s, sizes known on every release; extract and pull work, and pull keeps its manifest', async () => {
    await using proxy = await ImageProxy.spawn(config());
    await using image = await proxy.openImage(built);
    const { digest, manifest } = await proxy.fetchManifest(image);
    const layers = await proxy.getLayerDiffIds(image);
    assert.equal(layers.length, 2);
    assert.deepEqual(layers.map(({ digest: d, size, mediaType }) => ({ digest: d, size, mediaType })), manifest.layers.map(({ digest: d, size, mediaType }) => ({ digest: d, size, mediaType })));
    assert.deepEqual(layers.map((layer) => layer.digest), layers.map((layer) => layer.diffId), 'stored uncompressed: digest = diff_id');

    const rootfs = join(scratch.path, 'rootfs-built');
    ok(cli('extract', built, rootfs));
    assert.equal(readFileSync(join(rootfs, 'etc', 'base'), 'utf8'), 'base\n');
    assert.deepEqual(readFileSync(join(rootfs, 'etc', 'app')), noise(40_000, 9));

    const out = join(scratch.path, 'pulled-built');
    const run = ok(cli('pull', built, out));
    assert.equal(run.stderr, '', 'the manifest written is the source`s: nothing to report');
    const inspected = JSON.parse(skopeo('inspect', `oci:${out}:v1`)) as { Digest: string };
    assert.equal(inspected.Digest, digest);
  });
});

/**
 * Rootless: skopeo's image proxy does not enter the user namespace a
 * rootless store needs (skopeo#2563); `podman unshare` runs it there. Set
 * up as root: a new unprivileged user with its own /etc/subuid and
 * /etc/subgid range pulls the image with rootless podman (vfs) into its own
 * store; then, as that user, a Node script uses the built library with
 * `skopeoCommand: ['podman', 'unshare', SKOPEO]` to extract it, and with
 * plain skopeo to extract the same image from its oci: source. The trees
 * must be equal. Afterwards the user, its processes (podman's pause
 * process) and its files are removed, and /etc/subuid and /etc/subgid get
 * their contents back.
 */
const ROOTLESS_TOOLS = ['useradd', 'userdel', 'runuser', 'podman', 'newuidmap', 'newgidmap'];

function rootlessSkip(): string | false {
  if (process.getuid?.() !== 0) return 'creating a user and its /etc/subuid and /etc/subgid ranges needs root (CI runs as root)';
  const missing = ROOTLESS_TOOLS.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  return missing.length > 0 ? `missing ${missing.join(', ')} (scripts/setup.sh installs podman and uidmap)` : false;
}

/** Pids of a user's processes, from /proc (real uid). */
function processesOf(uid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) === uid) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** The first id after every range in a subuid/subgid file, at a 65536 boundary, at least 100000. */
function freeSubidStart(...files: string[]): number {
  let end = 100_000;
  for (const text of files) {
    for (const line of text.split('\n')) {
      const [, start, count] = line.split(':');
      if (start !== undefined && count !== undefined) end = Math.max(end, Number(start) + Number(count));
    }
  }
  return Math.ceil(end / 65536) * 65536;
}

/** What the script run as the user prints. */
interface RootlessResult {
  protocolVersion: string;
  pid: number;
  layers: Array<{ digest: string; size: number; diffId: string }>;
}

/** Extracts an image with the built library, as whoever runs it. argv: skopeoCommand (JSON), reference, target, tmpDir. */
const ROOTLESS_SCRIPT = (library: string): string => `
import { ImageProxy, RootfsWriter } from ${JSON.stringify(library)};
const [command, reference, target, tmpDir] = process.argv.slice(2);
const proxy = await ImageProxy.spawn({ skopeoCommand: JSON.parse(command), tmpDir });
try {
  const image = await proxy.openImage(reference);
  const layers = await proxy.getLayerDiffIds(image);
  const writer = new RootfsWriter(target);
  for (const layer of layers) await writer.applyLayer(await proxy.getBlob(image, layer.digest, layer.size), { diffId: layer.diffId });
  await writer.finish();
  await image.close();
  console.log(JSON.stringify({ protocolVersion: proxy.protocolVersion, pid: proxy.pid, layers }));
} finally {
  await proxy.close();
}
`;

describe('containers-storage: rootless, skopeo through podman unshare', { skip: rootlessSkip() }, () => {
  const user = `ciprl${process.pid}`;
  let uid = -1;
  let home: string;
  let saved: { subuid: string | undefined; subgid: string | undefined } | undefined;
  let area: string;
  let environment: NodeJS.ProcessEnv;

  /** Runs a command as the test user, in a clean environment. */
  const asUser = (command: string, ...args: string[]) =>
    spawnSync('runuser', ['-u', user, '--', 'env', '-i', ...Object.entries(environment).map(([k, v]) => `${k}=${v}`), command, ...args], {
      cwd: home,
      encoding: 'utf8',
      timeout: 180_000,
    });
  const okAsUser = (command: string, ...args: string[]): string => {
    const run = asUser(command, ...args);
    assert.equal(run.status, 0, `${command} ${args.join(' ')} as ${user}: exit ${run.status} ${run.error?.message ?? ''}\n${run.stderr}`);
    return run.stdout;
  };

  before(() => {
    const read = (path: string): string | undefined => (existsSync(path) ? readFileSync(path, 'utf8') : undefined);
    saved = { subuid: read('/etc/subuid'), subgid: read('/etc/subgid') };
    // A directory the user can reach (the suite's scratch dir is root's, mode 0700),
    // in lower case: podman names an image pulled from oci:PATH after PATH.
    area = join(tmpdir(), `cip-rootless-${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(area, { mode: 0o755 });
    chmodSync(area, 0o755);
    home = join(area, 'home');
    // No automatic subordinate ids: the range is written below, where it is known to be free.
    execFileSync('useradd', ['-M', '-d', home, '-s', '/bin/sh', '-K', 'SUB_UID_COUNT=0', '-K', 'SUB_GID_COUNT=0', user], { stdio: ['ignore', 'ignore', 'pipe'] });
    uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
    const start = freeSubidStart(saved.subuid ?? '', saved.subgid ?? '');
    const line = `${user}:${start}:65536\n`;
    const append = (text: string | undefined): string => (text && !text.endsWith('\n') ? `${text}\n` : (text ?? '')) + line;
    writeFileSync('/etc/subuid', append(saved.subuid));
    writeFileSync('/etc/subgid', append(saved.subgid));
    const runtime = join(area, 'run');
    const userTmp = join(area, 'tmp');
    for (const dir of [home, runtime, userTmp]) {
      mkdirSync(dir, { mode: 0o700 });
      chownSync(dir, uid, gid);
    }
    environment = { HOME: home, USER: user, LOGNAME: user, PATH: process.env.PATH ?? '/usr/bin:/bin', XDG_RUNTIME_DIR: runtime, TMPDIR: userTmp };
  });

  after(async () => {
    if (uid >= 0) {
      // podman unshare leaves a "podman pause" process holding the user namespace.
      for (const pid of processesOf(uid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await eventually(() => processesOf(uid).length === 0, 5000);
      execFileSync('userdel', [user], { stdio: ['ignore', 'ignore', 'pipe'] });
      // Anything the user left in the shared temporary directories.
      for (const dir of ['/tmp', '/var/tmp']) {
        for (const name of readdirSync(dir)) {
          const path = join(dir, name);
          try {
            if (statSync(path).uid === uid) rmSync(path, { recursive: true, force: true });
          } catch {
            // gone meanwhile
          }
        }
      }
    }
    if (saved) {
      for (const [file, text] of [['/etc/subuid', saved.subuid], ['/etc/subgid', saved.subgid]] as const) {
        if (text === undefined) rmSync(file, { force: true });
        else writeFileSync(file, text);
      }
    }
    if (area) rmSync(area, { recursive: true, force: true });
  });

  it('a rootless podman store (vfs) is read with skopeoCommand [podman, unshare, skopeo]; extract equals that of the oci: source', () => {
    // The image, readable by the user, pulled by rootless podman into the user's own store.
    const layout = join(area, 'oci');
    const image = buildImage(layout, 'v1', LAYERS);
    execFileSync('chmod', ['-R', 'a+rX', layout]);
    const pulled = okAsUser('podman', '--storage-driver', 'vfs', 'pull', '--quiet', `oci:${layout}:v1`).trim().split('\n').pop()!;
    okAsUser('podman', '--storage-driver', 'vfs', 'tag', pulled, NAME);
    const [graphRoot, runRoot] = okAsUser('podman', '--storage-driver', 'vfs', 'info', '--format', '{{.Store.GraphRoot}} {{.Store.RunRoot}}').trim().split(' ') as [string, string];
    assert.ok(graphRoot.startsWith(`${home}/`), `the user's own store: ${graphRoot}`);
    const stored = inStore(NAME, 'vfs', graphRoot, runRoot);

    // As the user: the library extracts from the store through podman unshare, and from the oci: source directly.
    const library = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'index.js');
    const script = join(area, 'extract.mjs');
    writeFileSync(script, ROOTLESS_SCRIPT(library));
    chmodSync(script, 0o644);
    const fromStore = join(home, 'rootfs-store');
    const fromLayout = join(home, 'rootfs-oci');
    const userTmp = environment.TMPDIR!;
    const result = JSON.parse(okAsUser(process.execPath, script, JSON.stringify(['podman', 'unshare', SKOPEO]), stored, fromStore, userTmp)) as RootlessResult;
    okAsUser(process.execPath, script, JSON.stringify([SKOPEO]), image.reference, fromLayout, userTmp);

    assert.deepEqual(result.layers.map((layer) => layer.digest), image.layers.map((layer) => layer.diffId), 'the uncompressed layers the store serves');
    const expected = snapshot(fromLayout);
    assert.ok(expected.get('bin/alias') && expected.get('opt/fresh') && !expected.has('etc/obsolete'), 'the whole image');
    assert.equal(expected.get('etc/config')?.uid, uid, 'extracted by the user');
    assertSameTree(snapshot(fromStore), expected, 'rootless extract from containers-storage (podman unshare) vs from oci:');

    // The CLI takes one executable (--skopeo): a two-line wrapper is the same recipe.
    const wrapper = join(area, 'skopeo-unshare');
    writeFileSync(wrapper, `#!/bin/sh\nexec podman unshare ${SKOPEO} "$@"\n`, { mode: 0o755 });
    const layers = JSON.parse(okAsUser(process.execPath, BIN, 'layers', stored, '--skopeo', wrapper, '--tmpdir', userTmp)) as Array<{ digest: string }>;
    assert.deepEqual(layers.map((layer) => layer.digest), image.layers.map((layer) => layer.diffId));

    // Every proxy was closed: no skopeo of the user's is left running (podman's pause process may be).
    const left = processesOf(uid).map(commandLine).filter((line) => /skopeo/.test(line));
    assert.deepEqual(left, [], 'no skopeo outlives the proxy');
  });
});
