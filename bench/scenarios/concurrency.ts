/**
 * Scenario 3, concurrency: K layers fetched one after another vs all at once
 * (Promise.all of blob streams, each into its own null sink) vs the largest
 * layer alone, on one proxy per release. The default transfer is GetRawBlob
 * on 0.2.8 and GetBlob before; on 0.2.8 GetBlob is measured too, since its
 * FinishPipe path is the one that could serialise. With hashing on each
 * pipe's reader thread, concurrent GetRawBlob streams hash on both cores.
 */
import { availableParallelism } from 'node:os';
import type { BlobTransfer, ImageProxy, OpenedImage } from '../../src/index.js';
import type { BlobFixture } from '../fixtures.js';
import { drain, interleave, mibPerSecond, now, secondsSince, spawnProxy } from '../harness.js';
import { sizeLabel, type Context, type Section } from '../scenario.js';
import { fmtSummary, mapSummary, summarize, table } from '../stats.js';

async function sequential(proxy: ImageProxy, image: OpenedImage, layers: readonly BlobFixture[], transfer: BlobTransfer): Promise<number> {
  const start = now();
  for (const layer of layers) await drain(await proxy.getBlob(image, layer.digest, layer.size, { transfer }));
  return secondsSince(start);
}

async function alone(proxy: ImageProxy, image: OpenedImage, layer: BlobFixture, transfer: BlobTransfer): Promise<number> {
  const start = now();
  await drain(await proxy.getBlob(image, layer.digest, layer.size, { transfer }));
  return secondsSince(start);
}

async function concurrent(proxy: ImageProxy, image: OpenedImage, layers: readonly BlobFixture[], transfer: BlobTransfer): Promise<number> {
  const start = now();
  await Promise.all(layers.map(async (layer) => drain(await proxy.getBlob(image, layer.digest, layer.size, { transfer }))));
  return secondsSince(start);
}

export async function concurrency(context: Context): Promise<Section> {
  const { options, releases } = context;
  const image = context.fixtures.layers(options.layerCount, options.layerMiB);
  const totalBytes = image.layers.reduce((sum, l) => sum + l.size, 0);
  const largest = image.layers.reduce((a, b) => (b.size > a.size ? b : a));
  const rows: string[][] = [];

  for (const release of releases) {
    const transfers: BlobTransfer[] = release.raw ? ['GetRawBlob', 'GetBlob'] : ['GetBlob'];
    const proxy = await spawnProxy(release);
    try {
      const opened = await proxy.openImage(image.reference);
      for (const transfer of transfers) {
        const samples = await interleave(
          options.runs,
          [
            ['sequential', () => sequential(proxy, opened, image.layers, transfer)],
            ['concurrent', () => concurrent(proxy, opened, image.layers, transfer)],
            ['largest alone', () => alone(proxy, opened, largest, transfer)],
          ] as const,
          (text) => context.progress(`concurrency ${release.label} ${transfer}: ${text}`),
        );
        const speedup = summarize(samples.sequential.map((s, i) => s / samples.concurrent[i]!));
        const overLargest = summarize(samples.concurrent.map((c, i) => c / samples['largest alone'][i]!));
        const rate = (seconds: number[]) => fmtSummary(mapSummary(summarize(seconds), (s) => mibPerSecond(totalBytes, s)));
        rows.push([
          release.label,
          transfer + (release.raw && transfer === 'GetBlob' ? ' (forced)' : ''),
          fmtSummary(summarize(samples.sequential), 2),
          fmtSummary(summarize(samples.concurrent), 2),
          `${speedup.median.toFixed(2)}x (${speedup.min.toFixed(2)}–${speedup.max.toFixed(2)})`,
          fmtSummary(summarize(samples['largest alone']), 2),
          `${overLargest.median.toFixed(2)}x (${overLargest.min.toFixed(2)}–${overLargest.max.toFixed(2)})`,
          rate(samples.sequential),
          rate(samples.concurrent),
        ]);
      }
      await opened.close();
    } finally {
      await proxy.close();
    }
  }

  const body = [
    `${options.layerCount} distinct uncompressed layers of ${sizeLabel(options.layerMiB)} (${sizeLabel((totalBytes / 1024 / 1024) | 0)} in all), one proxy per release; ` +
      `seconds and MiB/s are median (min–max) of ${options.runs} rounds after a warm-up round; speedup is the median (min–max) of per-round ratios. ` +
      `With ${availableParallelism()} cores, skopeo's writers, the hashing (skopeo's for GetBlob, ours for GetRawBlob) and the Node reader all share them.`,
    '',
    table(
      ['skopeo', 'transfer', 'sequential (s)', 'concurrent (s)', 'speedup', 'largest alone (s)', 'concurrent ÷ largest alone', 'sequential MiB/s', 'concurrent MiB/s'],
      rows,
      ['left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
    ),
  ].join('\n');
  return { title: '3. Concurrency', body, goals: [] };
}
