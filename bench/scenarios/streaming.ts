/**
 * Scenario 1, streaming: one large uncompressed layer through `proxy.getBlob`
 * into a null sink, on the transfer it picks by default and (0.2.8) forced
 * to GetBlob, against
 *   (a) `cat BLOB` into a pipe read and discarded by Node (the I/O floor of a
 *       Node pipe reader; `cat | cat > /dev/null` is shown for reference),
 *   (b) bench/minimal_client.py on the same skopeo: GetBlob (skopeo hashes),
 *       and on 0.2.8 GetRawBlob read with no hashing at all (the floor of what
 *       the proxy can deliver) and with hashlib's sha256.
 * Each transfer's CPU seconds per GiB (user + sys) are taken for the client
 * (our whole process, reader threads included) and for skopeo, and the
 * event-loop delay (p99, max) while our default transfer runs, into the null
 * sink and into a slow consumer (SLOW_CONSUMER_MS of main-thread work per
 * chunk: the loop must still run its timers between chunks).
 * Every variant runs once per round, each on a fresh proxy, so all see the
 * same machine noise; ratios are per-round pairs, then their median.
 */
import { defaultTransfer } from '../../src/blobs/index.js';
import {
  catIntoNode,
  catPipeCat,
  interleave,
  mibPerSecond,
  pairedRatios,
  pythonBlobCpu,
  slowSink,
  timeBlobCost,
  withImage,
  type LoopDelay,
  type TransferCost,
} from '../harness.js';
import { onlyLayer, sizeLabel, type Context, type Goal, type Section } from '../scenario.js';
import { fmtSummary, mapSummary, summarize, table } from '../stats.js';

/** The issue 13 targets, as ratios of the default path's speed to a baseline's. */
const TARGETS = { pythonRaw: 1.3, pythonOlder: 1.1, forcedGetBlob: 1.5, floor: 0.8, loopMaxMs: 20 };
/** Main-thread work per chunk of the slow consumer whose event-loop delay is reported. */
const SLOW_CONSUMER_MS = 1;

type Variant = 'ours default' | 'ours default, slow consumer' | 'ours GetBlob (forced)' | 'python GetBlob' | 'python GetRawBlob, no hash (floor)' | 'python GetRawBlob+sha256' | 'cat→node' | 'cat|cat';

export async function streaming(context: Context): Promise<Section> {
  const { options, releases } = context;
  const image = context.fixtures.blob(options.blobMiB);
  const blob = onlyLayer(image);
  const gib = blob.size / 1024 ** 3;
  const throughput = (seconds: number[]) => fmtSummary(mapSummary(summarize(seconds), (s) => mibPerSecond(blob.size, s)));
  const ratio = (ours: number[], base: number[]) => summarize(pairedRatios(base, ours)); // t_base/t_ours = speed ours/base
  const perGib = (values: number[]) => fmtSummary(mapSummary(summarize(values), (v) => v / gib), 2);

  const mainRows: string[][] = [];
  const ratioRows: string[][] = [];
  const loopRows: string[][] = [];
  const extraRows: string[][] = [];
  const goals: Goal[] = [];
  for (const release of releases) {
    const chosen = defaultTransfer(release.raw);
    const costs = new Map<Variant, TransferCost[]>();
    const delays: LoopDelay[] = [];
    const slowDelays: LoopDelay[] = [];
    const costed = (name: Variant, measure: () => Promise<TransferCost>) =>
      [
        name,
        async () => {
          const cost = await measure();
          costs.set(name, [...(costs.get(name) ?? []), cost]);
          return cost.seconds;
        },
      ] as const;
    const variants: Array<readonly [Variant, () => Promise<number>]> = [
      costed('ours default', () => withImage(release, image.reference, (proxy, img) => timeBlobCost(proxy, img, blob, undefined, (delay) => delays.push(delay)))),
      [
        'ours default, slow consumer',
        async () =>
          (await withImage(release, image.reference, (proxy, img) => timeBlobCost(proxy, img, blob, undefined, (delay) => slowDelays.push(delay), slowSink(SLOW_CONSUMER_MS)))).seconds,
      ],
    ];
    if (release.raw) variants.push(costed('ours GetBlob (forced)', () => withImage(release, image.reference, (proxy, img) => timeBlobCost(proxy, img, blob, 'GetBlob'))));
    if (context.pythonAvailable) {
      variants.push(costed('python GetBlob', () => pythonBlobCpu(release, image.reference, blob, 'GetBlob')));
      if (release.raw) {
        variants.push(costed('python GetRawBlob, no hash (floor)', () => pythonBlobCpu(release, image.reference, blob, 'GetRawBlob')));
        variants.push(costed('python GetRawBlob+sha256', () => pythonBlobCpu(release, image.reference, blob, 'GetRawBlob', true)));
      }
    }
    variants.push(['cat→node', () => catIntoNode(blob.path)], ['cat|cat', () => catPipeCat(blob.path)]);

    const samples = await interleave(options.runs, variants, (text) => context.progress(`streaming ${release.label}: ${text}`));
    const get = (name: Variant): number[] => {
      const found = (samples as Partial<Record<Variant, number[]>>)[name];
      if (!found) throw new Error(`no samples for ${name}`);
      return found;
    };
    // costs also hold the warm-up round: drop it, as interleave does
    const measured = (name: Variant) => (costs.get(name) ?? []).slice(1);

    for (const name of costs.keys()) {
      const cost = measured(name);
      const label = name === 'ours default' ? `ours default (${chosen})` : name;
      mainRows.push([release.label, label, throughput(get(name)), perGib(cost.map((c) => c.clientCpu)), perGib(cost.map((c) => c.skopeoCpu)), perGib(cost.map((c) => c.clientCpu + c.skopeoCpu))]);
    }
    mainRows.push([release.label, '(a) cat→Node', throughput(get('cat→node')), '', '', '']);

    const ours = get('ours default');
    const target = (baseline: Variant, goal: number | undefined, what: string) => {
      const r = ratio(ours, get(baseline));
      const met = goal === undefined ? undefined : r.median >= goal;
      ratioRows.push([release.label, `default ÷ ${baseline}`, goal === undefined ? '' : `≥ ${goal}x`, `${r.median.toFixed(2)}x (${r.min.toFixed(2)}–${r.max.toFixed(2)})${met === undefined ? '' : met ? ' ✅' : ' ❌'}`]);
      if (goal !== undefined) goals.push({ scenario: '1 streaming', goal: `${what}, ${release.label}`, result: `${r.median.toFixed(2)}x`, met: r.median >= goal });
    };
    if (context.pythonAvailable) target('python GetBlob', release.raw ? TARGETS.pythonRaw : TARGETS.pythonOlder, `default ≥ ${release.raw ? TARGETS.pythonRaw : TARGETS.pythonOlder}x the Python GetBlob client`);
    if (release.raw) target('ours GetBlob (forced)', TARGETS.forcedGetBlob, `default ≥ ${TARGETS.forcedGetBlob}x our forced GetBlob`);
    if (release.raw && context.pythonAvailable) {
      target('python GetRawBlob, no hash (floor)', TARGETS.floor, `default ≥ ${TARGETS.floor}x the no-hash GetRawBlob floor`);
      target('python GetRawBlob+sha256', undefined, '');
    }
    target('cat→node', undefined, '');

    const p99 = summarize(delays.slice(1).map((d) => d.p99));
    const max = summarize(delays.slice(1).map((d) => d.max));
    loopRows.push([release.label, chosen, 'null sink', fmtSummary(p99, 1), `${fmtSummary(max, 1)}${max.max < TARGETS.loopMaxMs ? ' ✅' : ' ❌'}`]);
    const slowP99 = summarize(slowDelays.slice(1).map((d) => d.p99));
    const slowMax = summarize(slowDelays.slice(1).map((d) => d.max));
    loopRows.push([release.label, chosen, `${SLOW_CONSUMER_MS} ms of work per chunk`, fmtSummary(slowP99, 1), fmtSummary(slowMax, 1)]);
    goals.push({ scenario: '1 streaming', goal: `event-loop delay max < ${TARGETS.loopMaxMs} ms while streaming, ${release.label}`, result: `${max.max.toFixed(1)} ms (worst round)`, met: max.max < TARGETS.loopMaxMs });
    extraRows.push([release.label, '`cat BLOB | cat > /dev/null` (no Node in the path)', throughput(get('cat|cat'))]);
  }

  const body = [
    `Blob: one uncompressed layer of ${sizeLabel(options.blobMiB)} from an \`oci:\` layout (page cache warm), into a null sink. ` +
      `Throughput is MiB/s, median (min–max) of ${options.runs} rounds after a warm-up round; ratios are the median (min–max) of per-round ratios. ` +
      `Each client runs on a fresh skopeo; only the transfer is timed (request → verified end). ` +
      `CPU is user + sys seconds per GiB during the transfer: the client's whole process (our blob reader threads included) and skopeo's.`,
    '',
    table(
      ['skopeo', 'client, transfer', 'MiB/s', 'client CPU s/GiB', 'skopeo CPU s/GiB', 'total CPU s/GiB'],
      mainRows,
      ['left', 'left', 'right', 'right', 'right', 'right'],
    ),
    '',
    'Our default path against each baseline, same rounds (speed ratio; the goals are issue 13\'s):',
    '',
    table(['skopeo', 'ratio', 'goal', 'median (min–max)'], ratioRows, ['left', 'left', 'left', 'right']),
    '',
    `Event-loop delay while our default path streams the blob (\`perf_hooks.monitorEventLoopDelay\`, 1 ms resolution), ms, median (min–max) over the rounds; goal: max < ${TARGETS.loopMaxMs} ms (into the null sink). ` +
      `The slow consumer spends ${SLOW_CONSUMER_MS} ms on the main thread per chunk; its rounds are not timed against the baselines:`,
    '',
    table(['skopeo', 'transfer', 'consumer', 'p99 ms', 'max ms'], loopRows, ['left', 'left', 'left', 'right', 'right']),
    '',
    'Other baselines measured in the same rounds:',
    '',
    table(['skopeo', 'baseline', 'MiB/s'], extraRows, ['left', 'left', 'right']),
  ].join('\n');
  return { title: '1. Streaming', body, goals };
}
