/**
 * Scenario 6, scaling: does cost grow linearly? Time per MiB for blobs of
 * several sizes, and time per image for runs of 10, 100, 1000 metadata
 * cycles (openImage + fetchManifest + closeImage), one proxy per release.
 * Flat rows mean no per-blob or per-image cost that accumulates.
 */
import { interleave, now, spawnProxy, timeBlob } from '../harness.js';
import { onlyLayer, sizeLabel, type Context, type Section } from '../scenario.js';
import { fmtMsSummary, summarize, table } from '../stats.js';
import { metadataCycle } from './metadata.js';

export async function scaling(context: Context): Promise<Section> {
  const { options, releases } = context;
  const meta = context.fixtures.meta();
  const blobRows: string[][] = [];
  const cycleRows: string[][] = [];

  for (const release of releases) {
    const transfer = release.raw ? 'GetRawBlob' : 'GetBlob';
    const proxy = await spawnProxy(release);
    try {
      const images = await Promise.all(
        options.scalingMiB.map(async (mib) => {
          const fixture = context.fixtures.blob(mib);
          return { mib, blob: onlyLayer(fixture), opened: await proxy.openImage(fixture.reference) };
        }),
      );
      const blobSamples = await interleave(
        options.runs,
        images.map(({ mib, blob, opened }) => [String(mib), async () => ((await timeBlob(proxy, opened, blob, transfer)) * 1000) / (blob.size / 1024 / 1024)] as const),
        (text) => context.progress(`scaling blobs ${release.label}: ${text}`),
      );
      blobRows.push([release.label, transfer, ...options.scalingMiB.map((mib) => fmtMsSummary(summarize(blobSamples[String(mib)]!)))]);
      for (const { opened } of images) await opened.close();

      const cycleSamples = await interleave(
        options.runs,
        options.cycles.map(
          (count) =>
            [
              String(count),
              async () => {
                const start = now();
                for (let i = 0; i < count; i++) await metadataCycle(proxy, meta.reference, false);
                return (now() - start) / count;
              },
            ] as const,
        ),
        (text) => context.progress(`scaling cycles ${release.label}: ${text}`),
      );
      cycleRows.push([release.label, ...options.cycles.map((count) => fmtMsSummary(summarize(cycleSamples[String(count)]!)))]);
    } finally {
      await proxy.close();
    }
  }

  const body = [
    `Blobs: ms per MiB through the default transfer (GetRawBlob on 0.2.8, else GetBlob), one proxy per release. ` +
      `Images: ms per open+manifest+close cycle of a small image. Median (min–max) of ${options.runs} rounds after a warm-up round; sizes alternate within each round.`,
    '',
    table(['skopeo', 'transfer', ...options.scalingMiB.map((mib) => `${sizeLabel(mib)} (ms/MiB)`)], blobRows, ['left', 'left', ...options.scalingMiB.map(() => 'right' as const)]),
    '',
    table(['skopeo', ...options.cycles.map((count) => `${count} images (ms/image)`)], cycleRows, ['left', ...options.cycles.map(() => 'right' as const)]),
  ].join('\n');
  return { title: '6. Scaling', body, goals: [] };
}
