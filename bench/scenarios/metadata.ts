/**
 * Scenario 2, metadata latency: N x (openImage + fetchManifest + fetchConfig
 * + closeImage) on one proxy, against one `skopeo inspect --config` process
 * per image. Process runs are fewer (BENCH_INSPECT_PROCS per round) and
 * extrapolated to N images, which the table says. The minimal Python client
 * doing the same N cycles shows what skopeo's own request handling costs,
 * i.e. how much of the per-image time a client can still save.
 */
import type { ImageProxy } from '../../src/index.js';
import { interleave, now, pythonMetadata, skopeoInspectConfig, spawnProxy } from '../harness.js';
import type { Release } from '../options.js';
import type { Context, Goal, Section } from '../scenario.js';
import { fmtMs, fmtMsSummary, fmtRatio, fmtSummary, mapSummary, percentile, sortedCopy, summarize, table } from '../stats.js';

const GOAL = 20;
export const METHODS = ['openImage', 'fetchManifest', 'fetchConfig', 'closeImage'] as const;
type Method = (typeof METHODS)[number];

/** One metadata cycle; returns the latency of each call in ms. */
export async function metadataCycle(proxy: ImageProxy, reference: string, withConfig: boolean): Promise<Record<Method, number>> {
  let t = now();
  const lap = (): number => {
    const previous = t;
    t = now();
    return t - previous;
  };
  const image = await proxy.openImage(reference);
  const openImage = lap();
  await proxy.fetchManifest(image);
  const fetchManifest = lap();
  let fetchConfig = 0;
  if (withConfig) {
    await proxy.fetchConfig(image);
    fetchConfig = lap();
  }
  await proxy.closeImage(image);
  return { openImage, fetchManifest, fetchConfig, closeImage: lap() };
}

export async function metadata(context: Context): Promise<Section> {
  const { options, releases } = context;
  const image = context.fixtures.meta();
  const cycles = options.metaCycles;
  const procs = options.inspectProcesses;
  const summaryRows: string[][] = [];
  const callRows: string[][] = [];
  const goals: Goal[] = [];

  for (const release of releases) {
    const proxy = await spawnProxy(release);
    const latencies: Record<Method, number[]> = { openImage: [], fetchManifest: [], fetchConfig: [], closeImage: [] };
    try {
      let warm = true; // the first (warm-up) round's latencies are dropped with it
      const samples = await interleave(
        options.runs,
        [
          [
            'ours',
            async () => {
              const start = now();
              for (let i = 0; i < cycles; i++) {
                const lap = await metadataCycle(proxy, image.reference, true);
                if (!warm) for (const method of METHODS) latencies[method].push(lap[method]);
              }
              warm = false;
              return (now() - start) / cycles;
            },
          ],
          ['inspect', () => inspectRound(release, image.reference, procs)],
          ['python', () => (context.pythonAvailable ? pythonMetadata(release, image.reference, cycles) : Promise.resolve(Number.NaN))],
        ] as const,
        (text) => context.progress(`metadata ${release.label}: ${text}`),
      );
      const ours = summarize(samples.ours);
      const inspect = summarize(samples.inspect);
      const speedup = summarize(samples.ours.map((o, i) => samples.inspect[i]! / o));
      const python = summarize(samples.python);
      summaryRows.push([
        release.label,
        fmtMsSummary(ours),
        context.pythonAvailable ? fmtMsSummary(python) : 'n/a',
        fmtSummary(mapSummary(ours, (ms) => (ms * cycles) / 1000), 2),
        fmtMsSummary(inspect),
        fmtSummary(mapSummary(inspect, (ms) => (ms * cycles) / 1000), 2),
        `${fmtRatio(speedup.median, { atLeast: GOAL })} (${speedup.min.toFixed(1)}–${speedup.max.toFixed(1)})`,
      ]);
      goals.push({
        scenario: '2 metadata',
        goal: `≥ ${GOAL}x faster than skopeo inspect per image, ${release.label}`,
        result: `${speedup.median.toFixed(1)}x (${fmtMs(ours.median)} ms vs ${fmtMs(inspect.median)} ms)`,
        met: speedup.median >= GOAL,
      });
      const cells = METHODS.map((method) => {
        const sorted = sortedCopy(latencies[method]);
        return `${fmtMs(percentile(sorted, 50))} / ${fmtMs(percentile(sorted, 99))}`;
      });
      callRows.push([release.label, ...cells]);
    } finally {
      await proxy.close();
    }
  }

  const body = [
    `${cycles} x (openImage + fetchManifest + fetchConfig + closeImage) of a small \`oci:\` image on one proxy, ${options.runs} rounds after a warm-up round, ` +
      `against \`skopeo inspect --config\`: **${procs} processes per round, extrapolated to ${cycles} images** (one process per image; ` +
      `spawned from Node, run one after another). (b) is bench/minimal_client.py doing the same ${cycles} cycles on its own proxy: ` +
      `the time skopeo itself needs per image. Per-image times in ms, median (min–max) of round means; speedup is the median (min–max) of per-round ratios inspect/ours.`,
    '',
    table(
      ['skopeo', 'ours ms/image', '(b) Python ms/image', `ours ${cycles} images (s)`, 'inspect ms/image', `inspect ${cycles} images (s, extrapolated)`, `speedup (goal ≥ ${GOAL}x)`],
      summaryRows,
      ['left', 'right', 'right', 'right', 'right', 'right', 'right'],
    ),
    '',
    `Per-call latency, p50 / p99 in ms over all ${cycles * options.runs} calls of each method:`,
    '',
    table(['skopeo', ...METHODS], callRows, ['left', 'right', 'right', 'right', 'right']),
  ].join('\n');
  return { title: '2. Metadata latency', body, goals };
}

/** Mean ms per `skopeo inspect --config` over `count` processes run one after another. */
async function inspectRound(release: Release, reference: string, count: number): Promise<number> {
  let total = 0;
  for (let i = 0; i < count; i++) total += await skopeoInspectConfig(release, reference);
  return (total * 1000) / count;
}
