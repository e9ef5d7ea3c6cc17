/**
 * Scenarios 5 and 5b, to disk: the CLI against skopeo itself doing the same
 * job, per release, interleaved round by round.
 *  - pull: `containers-image-proxy pull REF DIR` vs `skopeo copy REF oci:DIR:TAG`
 *    (same destination format), a 4-layer image.
 *  - extract: `containers-image-proxy extract REF DIR` vs `skopeo copy REF dir:D`
 *    followed by `tar -xf` of each layer into DIR, a 3-layer image: what a
 *    user would do without this library.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageFixture } from '../fixtures.js';
import { interleave, pairedRatios, runCommand, timedInScratch } from '../harness.js';
import { ROOT, type Release } from '../options.js';
import { sizeLabel, type Context, type Goal, type Section } from '../scenario.js';
import { fmtSummary, summarize, table } from '../stats.js';

const CLI = join(ROOT, 'dist', 'cli', 'main.js');


const cli = (release: Release, ...args: string[]): Promise<void> => runCommand(process.execPath, [CLI, ...args, '--skopeo', release.path, '--quiet']);

async function compare(
  context: Context,
  name: string,
  image: ImageFixture,
  ours: (release: Release, dir: string) => Promise<void>,
  theirs: (release: Release, dir: string) => Promise<void>,
): Promise<{ rows: string[][]; goals: Goal[] }> {
  const rows: string[][] = [];
  const goals: Goal[] = [];
  const scratch = join(context.options.cacheDir, 'scratch', name);
  for (const release of context.releases) {
    const samples = await interleave(
      context.options.runs,
      [
        ['ours', () => timedInScratch(scratch, (dir) => ours(release, dir))],
        ['skopeo', () => timedInScratch(scratch, (dir) => theirs(release, dir))],
      ] as const,
      (text) => context.progress(`${name} ${release.label}: ${text}`),
    );
    const ratio = summarize(pairedRatios(samples.ours, samples.skopeo));
    rows.push([
      release.label,
      fmtSummary(summarize(samples.ours), 2),
      fmtSummary(summarize(samples.skopeo), 2),
      `${ratio.median.toFixed(2)}x (${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)})`,
    ]);
    if (name === 'pull') {
      goals.push({ scenario: '5 pull', goal: `CLI pull within 1.1x of skopeo copy, ${release.label}`, result: `${ratio.median.toFixed(2)}x`, met: ratio.median <= 1.1 });
    }
  }
  return { rows, goals };
}

const header = ['skopeo', 'ours (s)', 'skopeo (s)', 'ours / skopeo'];

export async function pullToDisk(context: Context): Promise<Section> {
  const image = context.fixtures.layers(4, context.options.pullLayerMiB);
  const total = sizeLabel(context.options.pullLayerMiB * 4);
  const { rows, goals } = await compare(
    context,
    'pull',
    image,
    (release, dir) => cli(release, 'pull', image.reference, join(dir, 'out'), '--tag', 'bench', '--jobs', '4'),
    (release, dir) => runCommand(release.path, ['copy', '--quiet', image.reference, `oci:${join(dir, 'out')}:bench`]),
  );
  const body = [
    `A 4-layer image of ${total} (uncompressed layers) from an \`oci:\` layout into a fresh OCI layout: ` +
      `\`containers-image-proxy pull --jobs 4\` vs \`skopeo copy oci:… oci:…\` (same destination format). ` +
      `Seconds are median (min–max) of ${context.options.runs} interleaved rounds after a warm-up; the ratio is the median of per-round ratios.`,
    '',
    table(header, rows, ['left', 'right', 'right', 'right']),
  ].join('\n');
  return { title: '5. Pull to disk', body, goals };
}

export async function extractToDisk(context: Context): Promise<Section> {
  const image = context.fixtures.layers(3, context.options.extractLayerMiB);
  const { rows } = await compare(
    context,
    'extract',
    image,
    (release, dir) => cli(release, 'extract', image.reference, join(dir, 'rootfs')),
    async (release, dir) => {
      const copy = join(dir, 'copy');
      const rootfs = join(dir, 'rootfs');
      mkdirSync(rootfs);
      await runCommand(release.path, ['copy', '--quiet', image.reference, `dir:${copy}`]);
      for (const layer of image.layers) await runCommand('tar', ['-xf', join(copy, layer.digest.slice('sha256:'.length)), '-C', rootfs]);
    },
  );
  const body = [
    `A 3-layer image of ${sizeLabel(context.options.extractLayerMiB * 3)} unpacked into a directory: \`containers-image-proxy extract\` ` +
      `(streams each layer from the proxy into the directory) vs \`skopeo copy oci:… dir:…\` followed by \`tar -xf\` of each layer ` +
      `(writes the image to disk first, then reads it again). Median (min–max) of ${context.options.runs} interleaved rounds after a warm-up.`,
    '',
    table(header, rows, ['left', 'right', 'right', 'right']),
  ].join('\n');
  return { title: '5b. Extract to a directory', body, goals: [] };
}
