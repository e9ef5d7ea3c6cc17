/**
 * Measurement primitives shared by the scenarios: timing, null sinks, our
 * client streaming a blob, and the baselines (cat, the Python client,
 * skopeo inspect) run as child processes.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImageProxy, type BlobTransfer, type OpenedImage } from '../src/index.js';
import type { BlobFixture } from './fixtures.js';
import { BUILD_DIR, ROOT, type Release } from './options.js';

const run = promisify(execFile);

export function now(): number {
  return performance.now();
}

export function secondsSince(startMs: number): number {
  return (performance.now() - startMs) / 1000;
}

/** A Writable that drops everything: the cheapest consumer a stream can have. */
export function nullSink(): Writable {
  return new Writable({
    // writev lets a buffered Readable hand over everything it holds in one call.
    writev(_chunks, callback) {
      callback();
    },
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
}

/** A sink that keeps the event loop busy for `msPerChunk` on each chunk, as a consumer doing work on the main thread would. */
export function slowSink(msPerChunk: number): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      const until = performance.now() + msPerChunk;
      while (performance.now() < until) {
        /* the consumer's work */
      }
      callback();
    },
  });
}

/** Pipes a stream to a null sink; resolves when it ended (for blob streams: verified). */
export async function drain(stream: Readable): Promise<void> {
  await pipeline(stream, nullSink());
}

export function spawnProxy(release: Release): Promise<ImageProxy> {
  return ImageProxy.spawn({ skopeoCommand: [release.path] });
}

/** Runs `work` with a fresh proxy and the image opened, then closes both. */
export async function withImage<T>(release: Release, reference: string, work: (proxy: ImageProxy, image: OpenedImage) => Promise<T>): Promise<T> {
  const proxy = await spawnProxy(release);
  try {
    const image = await proxy.openImage(reference);
    try {
      return await work(proxy, image);
    } finally {
      await image.close();
    }
  } finally {
    await proxy.close();
  }
}

/** Seconds to stream one blob through our client to a null sink, verification included. */
export async function timeBlob(proxy: ImageProxy, image: OpenedImage, blob: BlobFixture, transfer: BlobTransfer): Promise<number> {
  const start = now();
  const stream = await proxy.getBlob(image, blob.digest, blob.size, { transfer });
  if (stream.transfer !== transfer) throw new Error(`asked for ${transfer}, got ${stream.transfer}`);
  await drain(stream);
  return secondsSince(start);
}

/**
 * Baseline (a): `cat FILE` into a pipe that this Node process reads and
 * discards, i.e. the I/O floor of a Node consumer reading a pipe.
 */
export function catIntoNode(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = now();
    const child = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', () => {});
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(secondsSince(start)) : reject(new Error(`cat exited with ${code}`))));
  });
}

/** The kernel's floor: `cat FILE | cat > /dev/null`, no Node in the data path. */
export function catPipeCat(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = now();
    const child = spawn('sh', ['-c', 'cat "$1" | cat > /dev/null', 'sh', path], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(secondsSince(start)) : reject(new Error(`cat | cat exited with ${code}`))));
  });
}

export type PythonMethod = 'GetBlob' | 'GetRawBlob';

/**
 * Baseline (b): bench/minimal_client.py streams the blob on its own proxy;
 * it times only the transfer, as {@link timeBlob} does.
 */
export async function pythonBlob(release: Release, reference: string, blob: BlobFixture, method: PythonMethod, verify = false): Promise<number> {
  return (await pythonBlobCpu(release, reference, blob, method, verify)).seconds;
}

/** What one timed transfer cost: wall seconds, and CPU seconds (user + sys) of the client and of skopeo. */
export interface TransferCost {
  seconds: number;
  clientCpu: number;
  skopeoCpu: number;
}

/** {@link pythonBlob} with the CPU seconds it and its skopeo spent during the transfer. */
export async function pythonBlobCpu(release: Release, reference: string, blob: BlobFixture, method: PythonMethod, verify = false): Promise<TransferCost> {
  const args = [join(ROOT, 'bench', 'minimal_client.py'), release.path, reference, blob.digest, String(blob.size), method];
  if (verify) args.push('--verify');
  const { stdout } = await run('python3', args, { maxBuffer: 1024 * 1024 });
  const result = JSON.parse(stdout) as { seconds: number; bytes: number; cpu: number; skopeo_cpu: number };
  if (result.bytes !== blob.size) throw new Error(`minimal_client.py read ${result.bytes} bytes, expected ${blob.size}`);
  return { seconds: result.seconds, clientCpu: result.cpu, skopeoCpu: result.skopeo_cpu };
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU seconds (user + sys, every thread) a process has used so far, from /proc. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** This process's CPU seconds so far: the main thread, the blob reader threads and the rest. */
export function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** Event-loop delay while a transfer ran (perf_hooks.monitorEventLoopDelay at 1 ms resolution), in ms. */
export interface LoopDelay {
  p99: number;
  max: number;
}

/**
 * {@link timeBlob} on the transfer getBlob picks by default (`transfer`
 * undefined) or a forced one, with its CPU cost and, optionally, the
 * event-loop delay meanwhile.
 */
export async function timeBlobCost(
  proxy: ImageProxy,
  image: OpenedImage,
  blob: BlobFixture,
  transfer: BlobTransfer | undefined,
  onLoopDelay?: (delay: LoopDelay) => void,
  sink: Writable = nullSink(),
): Promise<TransferCost> {
  const pid = proxy.pid;
  if (pid === undefined) throw new Error('the proxy has no pid');
  const histogram = onLoopDelay ? monitorEventLoopDelay({ resolution: 1 }) : undefined;
  const cpu = ownCpuSeconds();
  const skopeoCpu = processCpuSeconds(pid);
  histogram?.enable();
  const start = now();
  const stream = await proxy.getBlob(image, blob.digest, blob.size, transfer ? { transfer } : {});
  await pipeline(stream, sink);
  const seconds = secondsSince(start);
  histogram?.disable();
  if (histogram && onLoopDelay) onLoopDelay({ p99: histogram.percentile(99) / 1e6, max: histogram.max / 1e6 });
  return { seconds, clientCpu: ownCpuSeconds() - cpu, skopeoCpu: processCpuSeconds(pid) - skopeoCpu };
}

/** ms per image of the Python client doing the same metadata cycle on its own proxy. */
export async function pythonMetadata(release: Release, reference: string, cycles: number): Promise<number> {
  const { stdout } = await run('python3', [join(ROOT, 'bench', 'minimal_client.py'), release.path, reference, '--metadata', String(cycles)]);
  const result = JSON.parse(stdout) as { seconds: number; cycles: number };
  return (result.seconds * 1000) / result.cycles;
}

/** Seconds for one `skopeo inspect --config REF` process, spawn to exit. */
export async function skopeoInspectConfig(release: Release, reference: string): Promise<number> {
  const start = now();
  await run(release.path, ['inspect', '--config', reference], { maxBuffer: 16 * 1024 * 1024 });
  return secondsSince(start);
}

/** What a memory child measured (see memory-child.ts). */
export interface MemoryReport {
  /** RSS right before the transfer, after a GC. */
  baselineRss: number;
  /** Peak RSS during the transfer: VmHWM (reset at the baseline), and the 10 ms samples. */
  peakHwm: number;
  peakSampled: number;
  /** max(peaks) - baseline. */
  growth: number;
  seconds: number;
  bytes: number;
  /** How the bytes came: a blob transfer, `cat` for the no-library reference, or a whole image (`pullImage`, `extractImage`). */
  transfer: BlobTransfer | 'cat' | 'image';
}

/** What a memory child does with the blob: stream it to a null sink, or extract it into a directory. */
export type MemoryWorkload = 'stream' | 'extract';

/** What a memory child does with a whole image: `pullImage` into a layout, or `extractImage` into a directory. */
export type ImageWorkload = 'pullImage' | 'extractImage';

export type MemoryJob =
  /** A blob through our client. */
  | { kind: 'blob'; workload: MemoryWorkload; skopeo: string; reference: string; digest: string; size: number; transfer: BlobTransfer }
  /** A whole image through the library's image calls, `jobs` blobs at a time; `size` is the layers' total. */
  | { kind: 'image'; workload: ImageWorkload; skopeo: string; reference: string; size: number; jobs: number }
  /** The reference: `cat FILE` into a plain Node pipe reader, no library (what Node itself costs). */
  | { kind: 'cat'; path: string; size: number };

/** Streams a blob in a fresh Node process so its peak RSS belongs to this measurement alone. */
export async function memoryInChild(job: MemoryJob): Promise<MemoryReport> {
  const { stdout } = await run(process.execPath, ['--expose-gc', join(BUILD_DIR, 'memory-child.js'), JSON.stringify(job)], {
    maxBuffer: 1024 * 1024,
  });
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as MemoryReport;
}

export function mibPerSecond(bytes: number, seconds: number): number {
  return bytes / (1024 * 1024) / seconds;
}

/**
 * Runs every variant once per round, rounds after one untimed warm-up round,
 * so slow drifts of a noisy machine hit all variants alike and each round
 * yields paired samples.
 */
export async function interleave<K extends string>(
  rounds: number,
  variants: ReadonlyArray<readonly [K, () => Promise<number>]>,
  progress: (text: string) => void,
): Promise<Record<K, number[]>> {
  const samples = Object.fromEntries(variants.map(([name]) => [name, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round <= rounds; round++) {
    for (const [name, measure] of variants) {
      const value = await measure();
      if (round > 0) samples[name].push(value);
    }
    progress(round === 0 ? 'warm-up done' : `round ${round}/${rounds}`);
  }
  return samples;
}

/**
 * Times `job` in a fresh scratch directory, removed afterwards (neither is
 * timed). `sync` first flushes earlier rounds' writes, for jobs that create
 * many files and would otherwise pay for the previous round's writeback.
 */
export async function timedInScratch(scratch: string, job: (dir: string) => Promise<unknown>, options: { sync?: boolean } = {}): Promise<number> {
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  if (options.sync) execFileSync('sync');
  const start = now();
  await job(scratch);
  const seconds = secondsSince(start);
  rmSync(scratch, { recursive: true, force: true });
  return seconds;
}

/** Per-round ratios a[i]/b[i] of paired samples. */
export function pairedRatios(a: readonly number[], b: readonly number[]): number[] {
  return a.map((x, i) => x / b[i]!);
}

/** Runs a command to completion; rejects with its stderr on failure. */
export function runCommand(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr}`))));
  });
}
