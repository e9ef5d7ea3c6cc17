/**
 * Acceptance check of the core issue: stream a 512 MiB blob through getBlob
 * and report peak RSS growth and throughput, next to `cat` of the same blob
 * file into a Node pipe reader measured in the same run. Exits 1 if the
 * growth reaches 64 MiB.
 *
 *   node .build/bench/memory-check.js
 *
 * Env: BENCH_SKOPEO (default: the newest release in the matrix list, else
 * `skopeo`), BENCH_CHECK_MIB (default 512), BENCH_RUNS (default 3),
 * BENCH_CACHE (default .cache/bench).
 */
import { execFileSync } from 'node:child_process';
import type { BlobTransfer } from '../src/index.js';
import { catIntoNode, memoryInChild, mibPerSecond, type MemoryReport } from './harness.js';
import { probeReleases, readOptions, releasePaths } from './options.js';
import { Fixtures, onlyLayer, sizeLabel } from './scenario.js';
import { fmtSummary, summarize, table } from './stats.js';

const LIMIT_MIB = 64;
const MiB = 1024 * 1024;

const options = readOptions();
const sizeMiB = Number(process.env.BENCH_CHECK_MIB || 512);
const runs = Number(process.env.BENCH_RUNS || 3);
const paths = releasePaths(options);
const [release] = await probeReleases([paths[paths.length - 1]!]);
if (!release) throw new Error('no skopeo to check');

const fixtures = new Fixtures(options.cacheDir);
const image = fixtures.blob(sizeMiB);
const blob = onlyLayer(image);
if (fixtures.generatedBytes > 0) execFileSync('sync');

// The default transfer, and GetBlob too where the default is GetRawBlob: both must hold.
const transfers: BlobTransfer[] = release.raw ? ['GetRawBlob', 'GetBlob'] : ['GetBlob'];
const reports = new Map<BlobTransfer, MemoryReport[]>(transfers.map((t) => [t, []]));
const cat: number[] = [];
const catMemory: MemoryReport[] = [];
await catIntoNode(blob.path); // warm the page cache
for (let round = 0; round < runs; round++) {
  for (const transfer of transfers) {
    reports.get(transfer)!.push(
      await memoryInChild({ kind: 'blob', workload: 'stream', skopeo: release.path, reference: image.reference, digest: blob.digest, size: blob.size, transfer }),
    );
  }
  cat.push(await catIntoNode(blob.path));
  catMemory.push(await memoryInChild({ kind: 'cat', path: blob.path, size: blob.size }));
}

const catRate = summarize(cat.map((s) => mibPerSecond(blob.size, s)));
let failed = false;
const rows = transfers.map((transfer) => {
  const list = reports.get(transfer)!;
  const growth = summarize(list.map((r) => r.growth / MiB));
  const rate = summarize(list.map((r) => mibPerSecond(r.bytes, r.seconds)));
  if (growth.max >= LIMIT_MIB) failed = true;
  return [transfer, fmtSummary(growth, 1), growth.max < LIMIT_MIB ? '✅ pass' : '❌ FAIL', fmtSummary(rate), `${(rate.median / catRate.median).toFixed(2)}x`];
});
const catGrowth = summarize(catMemory.map((r) => r.growth / MiB));
rows.push(['`cat BLOB` → Node pipe, no library (reference)', fmtSummary(catGrowth, 1), '', fmtSummary(catRate), '1.00x']);

console.log(`memory check: ${sizeLabel(sizeMiB)} blob, ${release.label}, ${runs} runs (fresh Node process each), limit ${LIMIT_MIB} MiB of RSS growth\n`);
console.log(table(['path', 'RSS growth MiB, median (min–max)', `max < ${LIMIT_MIB} MiB`, 'MiB/s', 'vs cat'], rows, ['left', 'right', 'left', 'right', 'right']));
process.exitCode = failed ? 1 : 0;
