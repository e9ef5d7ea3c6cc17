/**
 * A zstd:chunked image end to end: skopeo 1.22 wrote its layers as many zstd
 * frames with skippable frames between them (test/fixtures/README.md), and
 * extract must unpack every file of every layer, equal to the same image with
 * gzip and plain layers (examples/hello-image), on whichever Node runs this
 * (node:zlib's decoder on 22.15+, fzstd on 20).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { SKOPEO, tempDir } from './support/env.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'dist', 'cli', 'main.js');
const CHUNKED = `oci:${join(ROOT, 'test', 'fixtures', 'hello-image-zstd-chunked')}:latest`;
const PLAIN = `oci:${join(ROOT, 'examples', 'hello-image')}:latest`;

function cli(...args: string[]): string {
  const result = spawnSync(process.execPath, [BIN, ...args, '--skopeo', SKOPEO, '--quiet'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.status, 0, `${args.join(' ')}: exit ${result.status}: ${result.stderr}`);
  return result.stdout;
}

function tree(dir: string, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const rel = prefix + entry.name;
    if (entry.isSymbolicLink()) out[rel] = `symlink ${readlinkSync(path)}`;
    else if (entry.isDirectory()) Object.assign(out, { [`${rel}/`]: 'dir' }, tree(path, `${rel}/`));
    else out[rel] = `file ${(statSync(path).mode & 0o7777).toString(8)} ${readFileSync(path, 'utf8')}`;
  }
  return out;
}

describe(`a zstd:chunked image (Node ${process.version})`, () => {
  it('its layers are zstd, as the manifest says', () => {
    const { manifest } = JSON.parse(cli('inspect', CHUNKED)) as { manifest: { layers: Array<{ mediaType: string }> } };
    assert.deepEqual(manifest.layers.map((l) => l.mediaType), ['application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar+zstd']);
  });

  it('extracts every file of every layer, equal to the gzip image', () => {
    using dir = tempDir();
    cli('extract', CHUNKED, join(dir.path, 'chunked'));
    cli('extract', PLAIN, join(dir.path, 'plain'));
    const chunked = tree(join(dir.path, 'chunked'));
    assert.deepEqual(chunked, tree(join(dir.path, 'plain')));
    // Files from the first layer's last frames and from the second layer.
    assert.ok(chunked['usr/share/hello/greeting.txt'] && chunked['usr/share/hello/packages.txt']);
    assert.equal(chunked['usr/share/hello/obsolete.txt'], undefined, 'the whiteout in layer 2 applied');
  });
});
