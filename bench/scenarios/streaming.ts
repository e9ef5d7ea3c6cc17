/**
 * Scenario 1, streaming overhead: one large uncompressed layer through
 * `proxy.getBlob` into a null sink, against
 *   (a) `cat BLOB` into a pipe read and discarded by Node (the I/O floor of a
 *       Node pipe reader; `cat | cat > /dev/null` is shown for reference),
 *   (b) bench/minimal_client.py on the same skopeo (GetBlob, and GetRawBlob on 0.2.8).
 * Every variant runs once per round, each on a fresh proxy, so all see the
 * same machine noise; ratios are per-round pairs, then their median.
 */
import type { BlobTransfer } from '../../src/index.js';
import { catIntoNode, catPipeCat, interleave, mibPerSecond, pairedRatios, pythonBlob, timeBlob, withImage } from '../harness.js';
import { onlyLayer, sizeLabel, type Context, type Goal, type Section } from '../scenario.js';
import { fmtRatio, fmtSummary, mapSummary, summarize, table } from '../stats.js';

const GOAL = 0.95;

type Variant = `ours ${BlobTransfer}` | `python ${BlobTransfer}` | 'python GetRawBlob+sha256' | 'cat→node' | 'cat|cat';

export async function streaming(context: Context): Promise<Section> {
  const { options, releases } = context;
  const image = context.fixtures.blob(options.blobMiB);
  const blob = onlyLayer(image);
  const throughput = (seconds: number[]) => fmtSummary(mapSummary(summarize(seconds), (s) => mibPerSecond(blob.size, s)));
  const ratio = (ours: number[], base: number[]) => summarize(pairedRatios(base, ours)); // t_base/t_ours = speed ours/base

  const mainRows: string[][] = [];
  const extraRows: string[][] = [];
  const goals: Goal[] = [];
  for (const release of releases) {
    const transfers: BlobTransfer[] = release.raw ? ['GetBlob', 'GetRawBlob'] : ['GetBlob'];
    const variants: Array<readonly [Variant, () => Promise<number>]> = [];
    for (const transfer of transfers) {
      variants.push([`ours ${transfer}`, () => withImage(release, image.reference, (proxy, img) => timeBlob(proxy, img, blob, transfer))]);
      if (context.pythonAvailable) variants.push([`python ${transfer}`, () => pythonBlob(release, image.reference, blob, transfer)]);
    }
    // Our raw path hashes client-side; Python's minimal one does not. This row
    // tells hashing cost apart from transport cost.
    if (release.raw && context.pythonAvailable) variants.push(['python GetRawBlob+sha256', () => pythonBlob(release, image.reference, blob, 'GetRawBlob', true)]);
    variants.push(['cat→node', () => catIntoNode(blob.path)], ['cat|cat', () => catPipeCat(blob.path)]);

    const samples = await interleave(options.runs, variants, (text) => context.progress(`streaming ${release.label}: ${text}`));
    const get = (name: Variant): number[] => {
      const found = (samples as Partial<Record<Variant, number[]>>)[name];
      if (!found) throw new Error(`no samples for ${name}`);
      return found;
    };

    for (const transfer of transfers) {
      const ours = get(`ours ${transfer}`);
      const cat = get('cat→node');
      const vsCat = ratio(ours, cat);
      let pythonCell = 'n/a (no python3)';
      let vsPython = 'n/a';
      if (context.pythonAvailable) {
        const python = get(`python ${transfer}`);
        const r = ratio(ours, python);
        pythonCell = throughput(python);
        vsPython = `${fmtRatio(r.median, { atLeast: GOAL })} (${r.min.toFixed(2)}–${r.max.toFixed(2)})`;
        goals.push({
          scenario: '1 streaming',
          goal: `ours ≥ ${GOAL}x minimal Python client, ${release.label} ${transfer}`,
          result: `${r.median.toFixed(2)}x`,
          met: r.median >= GOAL,
        });
      }
      mainRows.push([release.label, transfer, throughput(ours), pythonCell, vsPython, throughput(cat), `${vsCat.median.toFixed(2)}x (${vsCat.min.toFixed(2)}–${vsCat.max.toFixed(2)})`]);
    }
    extraRows.push([release.label, '`cat BLOB | cat > /dev/null` (no Node in the path)', throughput(get('cat|cat'))]);
    if (release.raw && context.pythonAvailable) {
      const hashed = get('python GetRawBlob+sha256');
      const r = ratio(get('ours GetRawBlob'), hashed);
      extraRows.push([release.label, `Python GetRawBlob + hashlib sha256 (ours/this: ${r.median.toFixed(2)}x)`, throughput(hashed)]);
    }
  }

  const body = [
    `Blob: one uncompressed layer of ${sizeLabel(options.blobMiB)} from an \`oci:\` layout (page cache warm), into a null sink. ` +
      `Throughput is MiB/s, median (min–max) of ${options.runs} rounds after a warm-up round; ratios are the median (min–max) of per-round ratios. ` +
      `Each of ours and (b) runs on a fresh skopeo; only the transfer is timed (request → verified end).`,
    '',
    table(
      ['skopeo', 'transfer', 'ours MiB/s', '(b) Python MiB/s', `ours/(b) (goal ≥ ${GOAL}x)`, '(a) cat→Node MiB/s', 'ours/(a)'],
      mainRows,
      ['left', 'left', 'right', 'right', 'right', 'right', 'right'],
    ),
    '',
    'Other baselines measured in the same rounds:',
    '',
    table(['skopeo', 'baseline', 'MiB/s'], extraRows, ['left', 'left', 'right']),
  ].join('\n');
  return { title: '1. Streaming overhead', body, goals };
}
