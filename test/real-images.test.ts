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
import { readFileSync } from 'node:fs';
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

function extract(source: string, dir: string, ...flags: string[]): void {
  const run = spawnSync(process.execPath, [BIN, 'extract', source, dir, '--skopeo', SKOPEO, '--quiet', ...flags], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (run.status !== 0) throw new Error(`extract ${source} failed (exit ${run.status}): ${run.stderr}`);
  assert.equal(run.stderr, '', 'as root nothing is skipped, so nothing is warned about');
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

describe('real images: extract equals umoci unpack', { skip: isRoot ? false : 'umoci unpack and device nodes need root (CI runs as root)' }, () => {
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
        it(`from ${kind}`, () => {
          using dir = tempDir();
          const target = join(dir.path, 'rootfs');
          const flags = kind.startsWith('registry') ? ['--tls-verify=false'] : [];
          extract(sources()[kind]!, target, ...flags);
          assertSameTree(snapshot(target), reference(image), `${image.name} from ${kind} vs umoci unpack`, { ignore: umociOnly });
        });
      }
    });
  }
});

describe('real images: the fixtures themselves', { skip: isRoot ? false : 'needs root' }, () => {
  it('umoci unpack of each image is what the cache holds (the reference is umoci\'s, not ours)', () => {
    using dir = tempDir();
    const minbase = images.find((image) => image.name === 'minbase')!;
    const layout = minbase.sources.oci!.replace(/^oci:/, '');
    execFileSync('umoci', ['unpack', '--image', layout, join(dir.path, 'bundle')], { stdio: 'ignore' });
    assertSameTree(snapshot(join(dir.path, 'bundle', 'rootfs')), reference(minbase), 'a fresh umoci unpack vs the cached reference');
  });
});
