/**
 * One memory measurement in a process of its own (run by harness.ts
 * `memoryInChild`, with --expose-gc): set up (spawn the proxy, open the
 * image), GC, reset the kernel's peak-RSS counter, stream the blob to a null
 * sink, and print a JSON {@link MemoryReport}. A fresh process per
 * measurement keeps earlier work (fixtures, other scenarios) out of the peak.
 * Kind `cat` measures a plain Node pipe reader fed by `cat`, without the
 * library: the growth Node's own stream reading causes.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractImage, ImageProxy, pullImage, RootfsWriter, type ImageProgressEvent } from '../src/index.js';
import { drain, now, secondsSince, type MemoryJob, type MemoryReport } from './harness.js';

const KiB = 1024;

function statusField(name: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!match) throw new Error(`/proc/self/status has no ${name}`);
  return Number(match[1]) * KiB;
}

/** Resets VmHWM to the current RSS (Linux >= 4.0); false where not permitted. */
function resetPeak(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** Sets up a transfer and returns the function that runs it (resolving to bytes and how they came). */
async function prepare(job: MemoryJob): Promise<{ transfer: () => Promise<{ bytes: number; via: MemoryReport['transfer'] }>; cleanup: () => Promise<void> }> {
  if (job.kind === 'cat') {
    return {
      transfer: () =>
        new Promise((resolve, reject) => {
          let bytes = 0;
          const child = spawn('cat', [job.path], { stdio: ['ignore', 'pipe', 'inherit'] });
          child.stdout.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
          });
          child.on('error', reject);
          child.on('close', (code) => (code === 0 ? resolve({ bytes, via: 'cat' }) : reject(new Error(`cat exited with ${code}`))));
        }),
      cleanup: () => Promise.resolve(),
    };
  }
  const proxy = await ImageProxy.spawn({ skopeoCommand: [job.skopeo] });
  const target = mkdtempSync(join(tmpdir(), 'bench-extract-'));
  if (job.kind === 'image') {
    return {
      transfer: async () => {
        let bytes = 0;
        const onProgress = (event: ImageProgressEvent): void => {
          if (event.type === 'blob-done' && typeof event.role === 'number') bytes += event.bytes;
        };
        const options = { jobs: job.jobs, onProgress };
        if (job.workload === 'pullImage') await pullImage(proxy, job.reference, join(target, 'layout'), options);
        else await extractImage(proxy, job.reference, join(target, 'root'), options);
        return { bytes, via: 'image' };
      },
      cleanup: async () => {
        rmSync(target, { recursive: true, force: true });
        await proxy.close();
      },
    };
  }
  const image = await proxy.openImage(job.reference);
  return {
    transfer: async () => {
      const stream = await proxy.getBlob(image, job.digest, job.size, { transfer: job.transfer });
      if (job.workload === 'extract') await new RootfsWriter(target).applyLayer(stream);
      else await drain(stream);
      return { bytes: stream.bytesReceived, via: stream.transfer };
    },
    cleanup: async () => {
      rmSync(target, { recursive: true, force: true });
      await image.close();
      await proxy.close();
    },
  };
}

const job = JSON.parse(process.argv[2] ?? '') as MemoryJob;
const gc = (globalThis as { gc?: () => void }).gc;
const { transfer, cleanup } = await prepare(job);

gc?.();
const baselineRss = statusField('VmRSS');
const hwmReset = resetPeak();
let peakSampled = process.memoryUsage.rss();
const sampler = setInterval(() => {
  peakSampled = Math.max(peakSampled, process.memoryUsage.rss());
}, 10);

const start = now();
const { bytes, via } = await transfer();
const seconds = secondsSince(start);
clearInterval(sampler);
peakSampled = Math.max(peakSampled, process.memoryUsage.rss());
// Without the reset, VmHWM would include start-up peaks: rely on samples only.
const peakHwm = hwmReset ? statusField('VmHWM') : peakSampled;
await cleanup();

const report: MemoryReport = {
  baselineRss,
  peakHwm,
  peakSampled,
  growth: Math.max(peakHwm, peakSampled) - baselineRss,
  seconds,
  bytes,
  transfer: via,
};
console.log(JSON.stringify(report));
