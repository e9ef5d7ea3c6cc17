/**
 * Scenarios 5c and 5d, extraction at real file counts:
 *  - real rootfs: `containers-image-proxy extract` of the Debian 12 minbase
 *    image that scripts/real-images.sh builds (debootstrap + umoci, one gzip
 *    layer, ~6,800 entries) vs what a user does without this library,
 *    `skopeo copy oci:… oci:DIR:TAG` then `umoci unpack` (as root), with the
 *    peak RSS of our process against that of a bare `node` start;
 *  - tiny files: one uncompressed layer of 100,000 small files in 1,000
 *    directories, `extract` (through the proxy) vs GNU `tar -xf` of the same
 *    layer blob.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { blobPath, writeBlob, writeImage } from '../../test/support/oci-layout.js';
import { tar, type TarEntry } from '../../test/support/tar.js';
import { interleave, pairedRatios, timedInScratch } from '../harness.js';
import { ROOT } from '../options.js';
import type { Context, Goal, Section } from '../scenario.js';
import { fmtSummary, summarize, table } from '../stats.js';

const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const TIME = '/usr/bin/time';
/** Both sides create thousands of files: flush the previous round's first. */
const SYNC = { sync: true };

/** Runs a command; resolves with its peak RSS in KiB (GNU time's %M). */
function run(command: string, args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(TIME, ['-f', '%M', command, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr}`));
      resolve(Number(stderr.trim().split('\n').pop()));
    });
  });
}

const ratioText = (ours: number[], theirs: number[]) => {
  const ratio = summarize(pairedRatios(ours, theirs));
  return { median: ratio.median, text: `${ratio.median.toFixed(2)}x (${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)})` };
};

export async function realRootfs(context: Context): Promise<Section> {
  const fixtures = execFileSync('bash', [join(ROOT, 'scripts', 'real-images.sh'), '--print-dir'], { encoding: 'utf8' }).trim();
  const reference = `oci:${fixtures}/oci:minbase`;
  const scratch = join(context.options.cacheDir, 'scratch', 'real-rootfs');
  const nodeKiB = await run(process.execPath, ['-e', '0']);
  const rows: string[][] = [];
  const goals: Goal[] = [];
  for (const release of context.releases) {
    const rss: number[] = [];
    // The CLI doing everything but the layers (spawn, open, manifest): what the layers add is the growth.
    const idleKiB = await run(process.execPath, [CLI, 'inspect', reference, '--skopeo', release.path]);
    const samples = await interleave(
      context.options.runs,
      [
        ['ours', () => timedInScratch(scratch, async (dir) => rss.push(await run(process.execPath, [CLI, 'extract', reference, join(dir, 'rootfs'), '--skopeo', release.path, '--quiet'])), SYNC)],
        [
          'theirs',
          () =>
            timedInScratch(
              scratch,
              async (dir) => {
                await run(release.path, ['copy', '--quiet', reference, `oci:${join(dir, 'layout')}:t`]);
                await run('umoci', ['unpack', '--image', `${join(dir, 'layout')}:t`, join(dir, 'bundle')]);
              },
              SYNC,
            ),
        ],
      ] as const,
      (text) => context.progress(`real rootfs ${release.label}: ${text}`),
    );
    const ratio = ratioText(samples.ours, samples.theirs);
    const peakKiB = Math.max(...rss.slice(1));
    const growthMiB = (peakKiB - idleKiB) / 1024;
    const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;
    rows.push([release.label, fmtSummary(summarize(samples.ours), 2), fmtSummary(summarize(samples.theirs), 2), ratio.text, mib(peakKiB), mib(peakKiB - nodeKiB), mib(peakKiB - idleKiB)]);
    goals.push({ scenario: '5c real rootfs', goal: `extract ≤ 0.7x skopeo copy + umoci unpack, ${release.label}`, result: `${ratio.median.toFixed(2)}x`, met: ratio.median <= 0.7 });
    goals.push({ scenario: '5c real rootfs', goal: `extract RSS growth (over inspect) < 64 MiB, ${release.label}`, result: `${growthMiB.toFixed(0)} MiB`, met: growthMiB < 64 });
  }
  const body = [
    'The Debian 12 minbase image of scripts/real-images.sh (debootstrap + umoci: one gzip layer, ~6,800 entries, ~200 MB) unpacked into a directory: ' +
      '`containers-image-proxy extract oci:…` vs `skopeo copy oci:… oci:DIR:t` + `umoci unpack` (as root), what a user does without this library. ' +
      `Median (min–max) of ${context.options.runs} interleaved rounds after a warm-up, \`sync\` before each. ` +
      `Memory: the CLI's peak RSS (GNU time, the highest of the measured rounds), and its growth over \`node -e 0\` (${(nodeKiB / 1024).toFixed(0)} MiB) ` +
      'and over the same CLI running `inspect` on the image (spawn, open, manifest: everything but the layers). The goal is judged on the latter: what streaming and applying the layers adds. ' +
      'Most of it is Node\'s: a blob streamed to /dev/null alone peaks about 40 MiB above `inspect`, short-lived buffers that V8 collects only past its external-memory limit.',
    '',
    table(['skopeo', 'extract (s)', 'copy + umoci (s)', 'extract / theirs', 'peak RSS', 'over node', 'over inspect'], rows, ['left', 'right', 'right', 'right', 'right', 'right', 'right']),
  ].join('\n');
  return { title: '5c. Extract a real root filesystem', body, goals };
}

const TINY_FILES = 100_000;
const TINY_TAG = 'tiny-files-v1';

/** The 100,000-file image, built once into the bench layout. */
function tinyFilesImage(cacheDir: string): { reference: string; blob: string } {
  const layout = join(cacheDir, 'tiny-layout');
  const marker = join(layout, `${TINY_TAG}.json`);
  if (existsSync(marker)) return JSON.parse(readFileSync(marker, 'utf8')) as { reference: string; blob: string };
  rmSync(layout, { recursive: true, force: true });
  const entries: TarEntry[] = [];
  for (let d = 0; d < TINY_FILES / 100; d++) {
    entries.push({ type: 'dir', name: `d${d}/` });
    for (let f = 0; f < 100; f++) entries.push({ type: 'file', name: `d${d}/f${f}`, content: 'x'.repeat((d * 7 + f * 13) % 300) });
  }
  const layer = tar(entries);
  const digest = writeBlob(layout, layer);
  writeImage(layout, TINY_TAG, [{ digest, size: layer.length, mediaType: 'application/vnd.oci.image.layer.v1.tar', diffId: digest }]);
  const result = { reference: `oci:${layout}:${TINY_TAG}`, blob: blobPath(layout, digest) };
  writeFileSync(marker, JSON.stringify(result));
  return result;
}

export async function tinyFiles(context: Context): Promise<Section> {
  const image = tinyFilesImage(context.options.cacheDir);
  const scratch = join(context.options.cacheDir, 'scratch', 'tiny-files');
  const rows: string[][] = [];
  const goals: Goal[] = [];
  for (const release of context.releases) {
    const samples = await interleave(
      context.options.runs,
      [
        ['ours', () => timedInScratch(scratch, (dir) => run(process.execPath, [CLI, 'extract', image.reference, join(dir, 'rootfs'), '--skopeo', release.path, '--quiet']), SYNC)],
        ['tar', () => timedInScratch(scratch, (dir) => run('tar', ['-xf', image.blob, '-C', dir]), SYNC)],
      ] as const,
      (text) => context.progress(`tiny files ${release.label}: ${text}`),
    );
    const ratio = ratioText(samples.ours, samples.tar);
    rows.push([release.label, fmtSummary(summarize(samples.ours), 2), fmtSummary(summarize(samples.tar), 2), ratio.text]);
    goals.push({ scenario: '5d tiny files', goal: `100,000-file layer within 2x GNU tar -x, ${release.label}`, result: `${ratio.median.toFixed(2)}x`, met: ratio.median <= 2 });
  }
  const body = [
    `One uncompressed layer of ${TINY_FILES.toLocaleString('en')} files of 0–300 bytes in 1,000 directories: \`containers-image-proxy extract\` ` +
      `(through the proxy) vs GNU \`tar -xf\` of the same layer blob. Median (min–max) of ${context.options.runs} interleaved rounds after a warm-up, \`sync\` before each.`,
    '',
    table(['skopeo', 'extract (s)', 'tar -x (s)', 'extract / tar'], rows, ['left', 'right', 'right', 'right']),
  ].join('\n');
  return { title: '5d. Extract 100,000 tiny files', body, goals };
}

