/**
 * Conformance on real images made by independent tools: a Debian 12 minbase
 * rootfs from debootstrap, packed by umoci (one layer, and several layers of
 * real changes), and by buildah; each also converted by skopeo to
 * oci-archive:, docker-archive:, dir: (v2s2), zstd, and pushed to a real
 * registry as OCI and as v2s2. For each image and source, `extract` through
 * the proxy under test must equal `umoci unpack` of the same image (run as
 * root: the independent reference) entry by entry.
 *
 * The images are built once by scripts/real-images.sh (run by setup) and
 * cached under .cache/real-images/. A missing cache fails the suite: it is
 * part of what CI proves.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SKOPEO, tempDir } from './support/env.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { assertSameTree, snapshot, type EntryFacts, type Snapshot } from './support/tree.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'dist', 'cli', 'main.js');

interface FixtureImage {
  name: string;
  layers: number;
  reference: string;
  sources: Record<string, string>;
  failed?: Record<string, string>;
}

function loadFixtures(): FixtureImage[] {
  const found = spawnSync('bash', [join(ROOT, 'scripts', 'real-images.sh'), '--print-dir'], { encoding: 'utf8' });
  if (found.status !== 0) throw new Error(`the real-image fixtures are not built: run scripts/setup.sh (${found.stderr.trim()})`);
  const dir = found.stdout.trim();
  return (JSON.parse(readFileSync(join(dir, 'fixtures.json'), 'utf8')) as { images: FixtureImage[] }).images;
}

const images = loadFixtures();
const isRoot = process.getuid?.() === 0;

/**
 * REAL_IMAGES_SCOPE=sample runs a sample: the extracts of the layered image
 * (8 layers: whiteouts, type changes and hardlinks across layers) from every
 * source, and of the others from their OCI layout. scripts/test.sh runs the
 * whole file once, on the newest skopeo, and the sample on the other runs, to
 * keep CI under its time budget. Anything else runs everything.
 */
const scope = process.env.REAL_IMAGES_SCOPE ?? 'full';
if (!['full', 'sample'].includes(scope)) throw new Error(`REAL_IMAGES_SCOPE=${scope}: expected "full" or "sample"`);
const sampled = scope === 'sample';
const SAMPLE_SKIP = 'REAL_IMAGES_SCOPE=sample: runs whole on the newest skopeo only (scripts/test.sh)';
const pullSkip = sampled ? SAMPLE_SKIP : false;

function cli(...args: string[]): string {
  const run = spawnSync(process.execPath, [BIN, ...args, '--skopeo', SKOPEO, '--quiet'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (run.status !== 0) throw new Error(`${args.join(' ')} failed (exit ${run.status}): ${run.stderr}`);
  return run.stderr;
}

function extract(source: string, dir: string, ...flags: string[]): void {
  assert.equal(cli('extract', source, dir, ...flags), '', 'as root nothing is skipped, so nothing is warned about');
}

/** Every blob of an OCI layout hashes to its name; returns the tag's manifest digest. */
function verifyLayout(layout: string, tag: string): string {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(entry, `index.json names ${tag}`);
  const blobs = join(layout, 'blobs', 'sha256');
  for (const name of readdirSync(blobs)) {
    assert.equal(createHash('sha256').update(readFileSync(join(blobs, name))).digest('hex'), name, `blob ${name} holds what its name says`);
  }
  return entry.digest;
}

/**
 * `umoci unpack`; umoci 0.4.7 (Debian 12) reads no zstd layers, so a zstd
 * layout is first recompressed to gzip by skopeo, another independent tool.
 */
function umociUnpack(layout: string, tag: string, bundle: string): void {
  const unpack = (image: string) => spawnSync('umoci', ['unpack', '--image', image, bundle], { encoding: 'utf8' });
  let run = unpack(`${layout}:${tag}`);
  if (run.status !== 0 && /not correct mediatype: application\/vnd\.oci\.image\.layer\.v1\.tar\+zstd/.test(run.stderr)) {
    execFileSync('skopeo', ['copy', '--quiet', '--dest-compress-format=gzip', `oci:${layout}:${tag}`, `oci:${layout}-gzip:${tag}`]);
    run = unpack(`${layout}-gzip:${tag}`);
  }
  if (run.status !== 0) throw new Error(`umoci unpack ${layout}:${tag} failed: ${run.stderr}`);
}

/** Manifest digests whose umoci unpack was already compared in this run. */
const unpacked = new Set<string>();

/**
 * A file in the host's /tmp where the layered image's `var/tmp -> /tmp`
 * layer, followed by a whiteout below it, would delete it if the whiteout
 * went through the symlink to the host. The path is fixed by the image, and
 * runs of this suite may overlap (CI runs several at once), so the file is
 * made once and left in place: a check that deleted it would fail another
 * run's check.
 */
function hostCanary(): { check(): void } {
  const path = '/tmp/.fixture-canary';
  try {
    writeFileSync(path, 'host', { flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return {
    check() {
      assert.equal(readFileSync(path, 'utf8'), 'host', 'the host file below the symlink target is untouched');
    },
  };
}

/**
 * Where umoci goes beyond what the image says: when no layer has a "./"
 * entry (buildah writes none), umoci sets the root's mtime to the epoch;
 * runtimes and RootfsWriter leave a directory the image does not describe
 * alone.
 */
function umociOnly(rel: string, facts: EntryFacts): Array<keyof EntryFacts> {
  return rel === '' && facts.mtimeNs === 0n ? ['mtimeNs'] : [];
}

const references = new Map<string, Snapshot>();
function reference(image: FixtureImage): Snapshot {
  let cached = references.get(image.name);
  if (!cached) references.set(image.name, (cached = snapshot(image.reference)));
  return cached;
}

describe('real images: extract and pull equal umoci unpack', { skip: isRoot ? false : 'umoci unpack and device nodes need root (CI runs as root)' }, () => {
  let registry: TestRegistry;
  const pushed = new Map<string, Record<string, string>>();

  before(async () => {
    registry = await startRegistry();
    for (const image of images) {
      const source = image.sources.oci!;
      pushed.set(image.name, {
        'registry (OCI)': await registry.push(source, `real/${image.name}:oci`, { format: 'oci' }),
        'registry (v2s2)': await registry.push(source, `real/${image.name}:v2s2`, { format: 'v2s2' }),
      });
    }
  });
  after(async () => registry?.stop());

  it('has the images it promises', () => {
    assert.deepEqual(images.map((image) => image.name).sort(), ['buildah', 'layered', 'minbase']);
    for (const image of images) assert.deepEqual(image.failed ?? {}, {}, `${image.name}: every conversion was made`);
    assert.ok(reference(images.find((image) => image.name === 'minbase')!).size > 5000, 'a real rootfs, thousands of entries');
  });

  for (const image of images) {
    describe(image.name, () => {
      const sources = () => ({ ...image.sources, ...pushed.get(image.name) });
      for (const kind of [...Object.keys(image.sources), 'registry (OCI)', 'registry (v2s2)']) {
        const flags = kind.startsWith('registry') ? ['--tls-verify=false'] : [];
        it(`extract from ${kind}`, { skip: sampled && image.name !== 'layered' && kind !== 'oci' ? SAMPLE_SKIP : false }, () => {
          using dir = tempDir();
          const target = join(dir.path, 'rootfs');
          const canary = hostCanary();
          extract(sources()[kind]!, target, ...flags);
          canary.check();
          assertSameTree(snapshot(target), reference(image), `${image.name} from ${kind} vs umoci unpack`, { ignore: umociOnly });
        });
        it(`pull from ${kind}: a layout skopeo and umoci read, unpacking to the same tree`, { skip: pullSkip }, () => {
          using dir = tempDir();
          const layout = join(dir.path, 'layout');
          cli('pull', sources()[kind]!, layout, '--tag', 'pulled', ...flags);
          const digest = verifyLayout(layout, 'pulled');
          const inspected = JSON.parse(execFileSync(SKOPEO, ['inspect', `oci:${layout}:pulled`], { encoding: 'utf8' })) as { Digest: string; Layers: string[] };
          assert.equal(inspected.Digest, digest);
          if (unpacked.has(digest)) return; // the same verified manifest and blobs: the same image, already unpacked
          umociUnpack(layout, 'pulled', join(dir.path, 'bundle'));
          assertSameTree(snapshot(join(dir.path, 'bundle', 'rootfs')), reference(image), `umoci unpack of ${image.name} pulled from ${kind}`, { ignore: umociOnly });
          unpacked.add(digest);
        });
      }
    });
  }
});

describe('real images: the fixtures themselves', { skip: isRoot ? pullSkip : 'needs root' }, () => {
  it('umoci unpack of each image is what the cache holds (the reference is umoci\'s, not ours)', () => {
    using dir = tempDir();
    const minbase = images.find((image) => image.name === 'minbase')!;
    const layout = minbase.sources.oci!.replace(/^oci:/, '');
    execFileSync('umoci', ['unpack', '--image', layout, join(dir.path, 'bundle')], { stdio: 'ignore' });
    assertSameTree(snapshot(join(dir.path, 'bundle', 'rootfs')), reference(minbase), 'a fresh umoci unpack vs the cached reference');
  });
});
