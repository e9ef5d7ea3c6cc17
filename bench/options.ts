/**
 * What a benchmark run measures, from the environment:
 *
 *   BENCH_QUICK=1            small sizes and 3 runs: a smoke run in well under a minute
 *   BENCH_SKOPEO=PATH        only this skopeo (default: every release in
 *                            .cache/skopeo-matrix/list, else `skopeo` on PATH)
 *   BENCH_RUNS=N             measured runs per data point (default 5, quick 3)
 *   BENCH_BLOB_MIB=N         scenario 1 blob size (default 1024, quick 64)
 *   BENCH_LAYER_MIB=N        scenario 3 layer size (default 128, quick 8)
 *   BENCH_LAYERS=N           scenario 3 layer count (default 8)
 *   BENCH_MEMORY_MIB=A,B     scenario 4 blob and image sizes (default 256,1024; quick 32,128)
 *   BENCH_MEMORY_JOBS=A,B    scenario 4 whole-image rows: the jobs values (default 4)
 *   BENCH_MEMORY_ROWS=a,b    scenario 4 rows: blobs (one blob), images (pullImage, extractImage) (default both)
 *   BENCH_SCALING_MIB=A,B,C  scenario 6 blob sizes (default 16,256,1024; quick 4,16,64)
 *   BENCH_CYCLES=A,B,C       scenario 6 metadata cycle counts (default 10,100,1000; quick 10,100)
 *   BENCH_META_CYCLES=N      scenario 2 cycles per run (default 200, quick 50)
 *   BENCH_INSPECT_PROCS=N    scenario 2 `skopeo inspect` processes per run (default 40, quick 10)
 *   BENCH_ONLY=a,b           only these scenarios (streaming, metadata, concurrency, memory, pull, extract,
 *                            real-rootfs, tiny-files, scaling, zstd, network)
 *   BENCH_NET_MBPS=N         scenario 11 per-connection rate in MB/s (default 20)
 *   BENCH_NET_LATENCY_MS=N   scenario 11 latency before each answer (default 5)
 *   BENCH_PULL_LAYER_MIB=N   each of the 4 layers of the pull image (default 256)
 *   BENCH_SERVE_LAYER_MIB=N  each of the 4 layers of the serve image (default 128: 512 MiB in all)
 *   BENCH_EXTRACT_LAYER_MIB=N each of the 3 layers of the extract image (default 100)
 *   BENCH_CACHE=DIR          fixture cache (default .cache/bench)
 *   BENCH_OUT=FILE           Markdown output (default bench/RESULTS.md; quick: .cache/bench/RESULTS-quick.md)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageProxy } from '../src/index.js';

/** The repository root (this file runs from .build/bench/). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Compiled bench scripts (memory children run from here). */
export const BUILD_DIR = dirname(fileURLToPath(import.meta.url));

export const SCENARIOS = ['streaming', 'metadata', 'concurrency', 'memory', 'pull', 'extract', 'real-rootfs', 'tiny-files', 'scaling', 'zstd', 'network', 'serve'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** Scenario 4's row groups: single blobs, and whole images. */
export const MEMORY_ROWS = ['blobs', 'images'] as const;
export type MemoryRows = (typeof MEMORY_ROWS)[number];

export interface BenchOptions {
  quick: boolean;
  runs: number;
  blobMiB: number;
  layerMiB: number;
  layerCount: number;
  /** Each of the 4 layers of the pull image. */
  pullLayerMiB: number;
  /** Each of the 4 layers of scenario 12's image (serve). */
  serveLayerMiB: number;
  /** Each of the 3 layers of the extract image. */
  extractLayerMiB: number;
  memoryMiB: number[];
  /** Scenario 4's whole-image rows, one per jobs value. */
  memoryJobs: number[];
  /** Which rows scenario 4 measures. */
  memoryRows: Set<MemoryRows>;
  scalingMiB: number[];
  cycles: number[];
  metaCycles: number;
  inspectProcesses: number;
  only: Set<ScenarioName>;
  cacheDir: string;
  outFile: string;
  /** Explicit skopeo, or undefined for the release matrix. */
  skopeo: string | undefined;
}

/** A positive number from the environment; `integer` for counts (sizes in MiB may be fractional). */
function num(name: string, fallback: number, integer: boolean): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new Error(`${name}=${raw}: expected a positive ${integer ? 'integer' : 'number'}`);
  }
  return value;
}

function list(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const values = raw.split(',').map((part) => Number(part.trim()));
  if (values.some((v) => !Number.isFinite(v) || v <= 0)) throw new Error(`${name}=${raw}: expected comma-separated positive numbers`);
  return values;
}

/** A comma-separated subset of `known` from the environment (default: all of them). */
function names<T extends string>(name: string, known: readonly T[]): Set<T> {
  const raw = process.env[name];
  const chosen = new Set<T>();
  for (const part of raw ? raw.split(',').map((s) => s.trim()) : known) {
    if (!(known as readonly string[]).includes(part)) throw new Error(`${name}: unknown value ${part}; known: ${known.join(', ')}`);
    chosen.add(part as T);
  }
  return chosen;
}

export function readOptions(): BenchOptions {
  const quick = process.env.BENCH_QUICK === '1';
  const cacheDir = resolve(ROOT, process.env.BENCH_CACHE || join('.cache', 'bench'));
  const only = names('BENCH_ONLY', SCENARIOS);
  return {
    quick,
    runs: num('BENCH_RUNS', quick ? 3 : 5, true),
    blobMiB: num('BENCH_BLOB_MIB', quick ? 64 : 1024, false),
    layerMiB: num('BENCH_LAYER_MIB', quick ? 8 : 128, false),
    layerCount: num('BENCH_LAYERS', 8, true),
    pullLayerMiB: num('BENCH_PULL_LAYER_MIB', quick ? 8 : 256, false),
    serveLayerMiB: num('BENCH_SERVE_LAYER_MIB', quick ? 8 : 128, false),
    extractLayerMiB: num('BENCH_EXTRACT_LAYER_MIB', quick ? 8 : 100, false),
    memoryMiB: list('BENCH_MEMORY_MIB', quick ? [32, 128] : [256, 1024]),
    memoryJobs: list('BENCH_MEMORY_JOBS', [4]),
    memoryRows: names('BENCH_MEMORY_ROWS', MEMORY_ROWS),
    scalingMiB: list('BENCH_SCALING_MIB', quick ? [4, 16, 64] : [16, 256, 1024]),
    cycles: list('BENCH_CYCLES', quick ? [10, 100] : [10, 100, 1000]),
    metaCycles: num('BENCH_META_CYCLES', quick ? 50 : 200, true),
    inspectProcesses: num('BENCH_INSPECT_PROCS', quick ? 10 : 40, true),
    only,
    cacheDir,
    outFile: resolve(ROOT, process.env.BENCH_OUT || (quick ? join(cacheDir, 'RESULTS-quick.md') : join('bench', 'RESULTS.md'))),
    skopeo: process.env.BENCH_SKOPEO || undefined,
  };
}

/** One skopeo build under test. */
export interface Release {
  path: string;
  /** e.g. `1.22.0`. */
  version: string;
  /** The image proxy protocol it speaks, e.g. `0.2.8`. */
  protocol: string;
  /** Whether it has GetRawBlob (protocol 0.2.8). */
  raw: boolean;
  /** e.g. `skopeo 1.22.0 (0.2.8)`. */
  label: string;
}

/** The skopeo commands to benchmark, in the order given (oldest first in the matrix list). */
export function releasePaths(options: Pick<BenchOptions, 'skopeo'>): string[] {
  if (options.skopeo) return [options.skopeo];
  const matrix = join(ROOT, '.cache', 'skopeo-matrix', 'list');
  if (existsSync(matrix)) {
    const paths = readFileSync(matrix, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
    if (paths.length > 0) return paths;
  }
  return ['skopeo'];
}

/** Asks each skopeo its version, and its proxy its protocol. */
export async function probeReleases(paths: readonly string[]): Promise<Release[]> {
  const releases: Release[] = [];
  for (const path of paths) {
    const versionText = execFileSync(path, ['--version'], { encoding: 'utf8' });
    const version = /version\s+(\S+)/.exec(versionText)?.[1] ?? versionText.trim();
    const proxy = await ImageProxy.spawn({ skopeoCommand: [path] });
    const protocol = proxy.protocolVersion;
    const raw = proxy.supports('GetRawBlob');
    await proxy.close();
    releases.push({ path, version, protocol, raw, label: `skopeo ${version} (${protocol})` });
  }
  return releases;
}

export interface Machine {
  cores: number;
  memory: string;
  cpu: string;
  kernel: string;
  node: string;
  python: string;
}

export function describeMachine(): Machine {
  const cpuinfo = safeRead('/proc/cpuinfo');
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  const processors = cpuinfo.match(/^processor\s*:/gm)?.length ?? cpus().length;
  let python = 'python3 missing';
  try {
    python = execFileSync('python3', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    // reported as missing; scenario 1 will say why its baseline is absent
  }
  return {
    cores: processors,
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    cpu,
    kernel: safeRead('/proc/sys/kernel/osrelease').trim() || 'unknown',
    node: process.version,
    python,
  };
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
