/**
 * podman's local store (`containers-storage:`) as a source, on the skopeo
 * release chosen by $SKOPEO. Every test uses a private store under its temp
 * dir, named `containers-storage:[vfs@ROOT+RUNROOT]NAME:TAG`, never the
 * machine's default store. The store keeps layers uncompressed: it serves
 * the config's diff_ids, not the gzip blobs its manifest names.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageNotFoundError, ImageProxy } from '../src/index.js';
import { baseConfig, tempDir } from './support/env.js';
import { buildImage, noise, type BuiltImage, type LayerSpec } from './support/oci-layout.js';

const scratch = tempDir('cip-storage-test-');

/** Three gzip layers: whiteouts, an opaque dir, a symlink, a hardlink, modes. */
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

function inStore(name: string, driver = 'vfs', root = ROOT, runroot = RUNROOT): string {
  return `containers-storage:[${driver}@${root}+${runroot}]${name}`;
}

let source: BuiltImage;
/** The image in the private store. */
let reference: string;

before(() => {
  source = buildImage(join(scratch.path, 'oci'), 'v1', LAYERS);
  reference = inStore(NAME);
  // Seeded by the system's skopeo: containers-storage re-executes its own
  // binary to apply layers, which the matrix's loader-run releases cannot.
  execFileSync('skopeo', ['copy', '--quiet', source.reference, reference], { stdio: ['ignore', 'ignore', 'pipe'] });
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
    await using proxy = await ImageProxy.spawn(baseConfig());
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
    await using proxy = await ImageProxy.spawn(baseConfig());
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
