/**
 * Scenario 4, memory: peak RSS growth of a fresh Node process while it
 * streams a blob through getBlob into a null sink, for two blob sizes. Each
 * measurement is its own child (bench/memory-child.ts): the kernel's peak
 * counter (VmHWM) is reset right before the transfer and cross-checked with
 * 10 ms samples of process.memoryUsage.rss(). Growth must not depend on size.
 * Whole images too: `pullImage` and `extractImage` of 4 layers of the same
 * total sizes, `jobs` at a time (BENCH_MEMORY_JOBS, default 4): growth must
 * not depend on the image or on jobs. BENCH_MEMORY_ROWS picks either group.
 */
import type { BlobTransfer } from '../../src/index.js';
import { memoryInChild, mibPerSecond, type ImageWorkload, type MemoryJob, type MemoryReport, type MemoryWorkload } from '../harness.js';
import { MEMORY_IMAGE_LAYERS, onlyLayer, sizeLabel, type Context, type Goal, type Section } from '../scenario.js';
import { fmtSummary, summarize, table } from '../stats.js';

const LIMIT_MIB = 64;
const MiB = 1024 * 1024;

/** The workloads measured: a blob to a null sink, and a blob extracted into a directory (RootfsWriter, as the CLI's extract). */
export const WORKLOADS: readonly MemoryWorkload[] = ['stream', 'extract'];
/** Whole images of the same total sizes, in layers fetched `jobs` at a time. */
export const IMAGE_WORKLOADS: readonly ImageWorkload[] = ['pullImage', 'extractImage'];

export async function memory(context: Context): Promise<Section> {
  const { options, releases } = context;
  const rows: string[][] = [];
  const goals: Goal[] = [];

  /** Runs `jobFor(size)` for every size, `runs` rounds with sizes alternating, and adds a row per size. */
  const measure = async (cells: { skopeo: string; transfer: string; workload: string }, jobFor: (mib: number) => MemoryJob, goal: boolean): Promise<void> => {
    const reports = new Map<number, MemoryReport[]>(options.memoryMiB.map((mib) => [mib, []]));
    for (let round = 1; round <= options.runs; round++) {
      for (const mib of options.memoryMiB) {
        const job = jobFor(mib);
        const report = await memoryInChild(job);
        if (report.bytes !== job.size) throw new Error(`memory child moved ${report.bytes} bytes via ${report.transfer}, expected ${job.size}`);
        reports.get(mib)!.push(report);
      }
      context.progress(`memory ${cells.skopeo} ${cells.transfer}: round ${round}/${options.runs}`);
    }
    for (const [mib, list] of reports) {
      const growth = summarize(list.map((r) => r.growth / MiB));
      const rate = summarize(list.map((r) => mibPerSecond(r.bytes, r.seconds)));
      const baseline = summarize(list.map((r) => r.baselineRss / MiB));
      const met = growth.max < LIMIT_MIB;
      const verdict = goal ? `${met ? '✅' : '❌'} max ${growth.max.toFixed(1)}` : `(reference) max ${growth.max.toFixed(1)}`;
      rows.push([cells.skopeo, cells.transfer, cells.workload, sizeLabel(mib), fmtSummary(baseline, 0), fmtSummary(growth, 1), verdict, fmtSummary(rate)]);
      if (goal) {
        goals.push({
          scenario: '4 memory',
          goal: `RSS growth < ${LIMIT_MIB} MiB, ${cells.skopeo} ${cells.transfer} ${cells.workload} ${sizeLabel(mib)}`,
          result: `max ${growth.max.toFixed(1)} MiB (median ${growth.median.toFixed(1)})`,
          met,
        });
      }
    }
  };

  /** Single blobs, and `cat` into a bare Node pipe reader as the reference. */
  async function measureBlobs(): Promise<void> {
    // What a bare Node pipe reader costs, so our rows can be read against it.
    await measure({ skopeo: '—', transfer: '`cat` → Node pipe, no library', workload: 'read' }, (mib) => {
      const blob = onlyLayer(context.fixtures.blob(mib));
      return { kind: 'cat', path: blob.path, size: blob.size };
    }, false);
    for (const release of releases) {
      const transfers: BlobTransfer[] = release.raw ? ['GetRawBlob', 'GetBlob'] : ['GetBlob'];
      for (const workload of WORKLOADS) {
        // Extraction is disk-bound and slow: measured on each release's default transfer only.
        for (const transfer of workload === 'extract' ? transfers.slice(0, 1) : transfers) {
          await measure({ skopeo: release.label, transfer, workload }, (mib) => {
            const image = context.fixtures.blob(mib);
            const blob = onlyLayer(image);
            return { kind: 'blob', workload, skopeo: release.path, reference: image.reference, digest: blob.digest, size: blob.size, transfer };
          }, true);
        }
      }
    }
  }

  /** Whole images, `jobs` layers at a time: memory must not grow with the image or with jobs. */
  async function measureImages(): Promise<void> {
    for (const release of releases) {
      for (const workload of IMAGE_WORKLOADS) {
        for (const jobs of options.memoryJobs) {
          await measure({ skopeo: release.label, transfer: `default, jobs ${jobs}`, workload: `${workload}, ${MEMORY_IMAGE_LAYERS} layers` }, (mib) => {
            const image = context.fixtures.layers(MEMORY_IMAGE_LAYERS, mib / MEMORY_IMAGE_LAYERS);
            const size = image.layers.reduce((sum, layer) => sum + layer.size, 0);
            return { kind: 'image', workload, skopeo: release.path, reference: image.reference, size, jobs };
          }, true);
        }
      }
    }
  }
  if (options.memoryRows.has('blobs')) await measureBlobs();
  if (options.memoryRows.has('images')) await measureImages();
  const body = [
    `One fresh Node process per measurement (${options.runs} per row; sizes alternate within each round). ` +
      `Growth = peak RSS during the transfer (VmHWM reset via /proc/self/clear_refs, and 10 ms samples) minus RSS right before it (after a GC). MiB, median (min–max); the goal is judged on the max. ` +
      `The first rows are the reference: \`cat BLOB\` read by a plain Node pipe reader, no library. It grows about as much as our streams do: ` +
      `the growth is Node's own pipe reading (a fresh 64 KiB buffer per read, freed when V8 collects it), not buffering in the library.`,
    '',
    table(
      ['skopeo', 'transfer', 'workload', 'blob', 'RSS before (MiB)', 'growth (MiB)', `growth < ${LIMIT_MIB} MiB`, 'MiB/s'],
      rows,
      ['left', 'left', 'left', 'right', 'right', 'right', 'left', 'right'],
    ),
  ].join('\n');
  return { title: '4. Memory', body, goals };
}
