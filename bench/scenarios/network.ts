/**
 * Scenario 11, the network as the bottleneck: a real registry behind a relay
 * that paces each connection like a WAN link (default 20 MB/s, 5 ms), and an
 * image of 6 layers of mixed sizes. Per release, interleaved round by round:
 *  - `largest`: the largest layer alone (spawn, open, getBlob, drain): the floor;
 *  - pullImage and extractImage with jobs 1 and jobs 4;
 *  - `skopeo copy docker://… oci:…`, which fetches layers in parallel too.
 * Goal (#12): jobs 4 within 1.2x of the largest layer alone, and at least as
 * fast as skopeo copy. RSS growth of this process is sampled during ours.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { extractImage, ImageProxy, pullImage, type ImageProxyConfig } from '../../src/index.js';
import { buildImage, noise } from '../../test/support/oci-layout.js';
import { startRegistry } from '../../test/support/registry.js';
import { drain, interleave, pairedRatios, runCommand, timedInScratch } from '../harness.js';
import { BUILD_DIR } from '../options.js';
import type { Context, Goal, Section } from '../scenario.js';
import { fmtSummary, summarize, table } from '../stats.js';

const MB = 1_000_000;


/** Starts the relay child; resolves with its port and the child. */
async function startRelay(upstreamPort: number, bytesPerSecond: number, latencyMs: number): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, [join(BUILD_DIR, 'relay-child.js'), String(upstreamPort), String(bytesPerSecond), String(latencyMs)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`relay exited ${code}`)));
  });
  return { port: Number(line), child };
}

/** Peak RSS growth of this process while `work` runs, in MiB. */
async function withPeakRss(work: () => Promise<void>, peaks: number[]): Promise<void> {
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    await work();
  } finally {
    clearInterval(timer);
    peak = Math.max(peak, process.memoryUsage().rss);
    peaks.push((peak - base) / 1024 / 1024);
  }
}

export async function network(context: Context): Promise<Section> {
  const quick = context.options.quick;
  const rate = Number(process.env.BENCH_NET_MBPS ?? 20) * MB;
  const latencyMs = Number(process.env.BENCH_NET_LATENCY_MS ?? 5);
  const sizesMiB = quick ? [8, 5, 3, 2, 1, 0.5] : [40, 24, 12, 6, 3, 1];
  const scratch = join(context.options.cacheDir, 'scratch', 'network');
  const source = join(context.options.cacheDir, 'network-source');
  mkdirSync(source, { recursive: true });
  // Small layers first, the largest in the middle: image order is not size order.
  const order = [4, 1, 0, 3, 5, 2];
  const image = buildImage(
    source,
    quick ? 'quick' : 'full',
    order.map((i) => ({ compression: 'none' as const, entries: [{ type: 'file' as const, name: `layer-${i}.bin`, content: noise(Math.round(sizesMiB[i]! * 1024 * 1024), 100 + i) }] })),
  );
  const registry = await startRegistry();
  const relay = await startRelay(registry.port, rate, latencyMs);
  const rows: string[][] = [];
  const ratioRows: string[][] = [];
  const goals: Goal[] = [];
  const rss: number[] = [];
  try {
    await registry.push(image.reference, 'bench/net:v1');
    const reference = `docker://127.0.0.1:${relay.port}/bench/net:v1`;
    for (const release of context.releases) {
      const config: ImageProxyConfig = { skopeoCommand: [release.path], insecureSkipTlsVerification: true };
      const largest = async (): Promise<void> => {
        await using proxy = await ImageProxy.spawn(config);
        await using opened = await proxy.openImage(reference);
        const layers = await proxy.getLayerInfo(opened);
        const biggest = layers.reduce((a, b) => (b.size > a.size ? b : a));
        await drain(await proxy.getBlob(opened, biggest.digest, biggest.size));
      };
      const ours = (work: (dir: string) => Promise<unknown>) => () => timedInScratch(scratch, (dir) => withPeakRss(async () => void (await work(dir)), rss));
      const samples = await interleave(
        context.options.runs,
        [
          ['largest', () => timedInScratch(scratch, largest)],
          ['pull1', ours((dir) => pullImage(config, reference, join(dir, 'out'), { jobs: 1 }))],
          ['pull4', ours((dir) => pullImage(config, reference, join(dir, 'out'), { jobs: 4 }))],
          ['extract1', ours((dir) => extractImage(config, reference, join(dir, 'rootfs'), { jobs: 1 }))],
          ['extract4', ours((dir) => extractImage(config, reference, join(dir, 'rootfs'), { jobs: 4 }))],
          ['skopeo', () => timedInScratch(scratch, (dir) => runCommand(release.path, ['copy', '--quiet', '--src-tls-verify=false', reference, `oci:${join(dir, 'out')}:bench`]))],
        ] as const,
        (text) => context.progress(`network ${release.label}: ${text}`),
      );
      rows.push([release.label, ...(['largest', 'pull1', 'pull4', 'extract1', 'extract4', 'skopeo'] as const).map((k) => fmtSummary(summarize(samples[k]), 2))]);
      const ratio = (a: readonly number[], b: readonly number[]) => summarize(pairedRatios(a, b)).median;
      const r = {
        pull4Largest: ratio(samples.pull4, samples.largest),
        extract4Largest: ratio(samples.extract4, samples.largest),
        pull4Skopeo: ratio(samples.pull4, samples.skopeo),
        extract4Skopeo: ratio(samples.extract4, samples.skopeo),
        pull1Pull4: ratio(samples.pull1, samples.pull4),
      };
      ratioRows.push([release.label, ...Object.values(r).map((x) => `${x.toFixed(2)}x`)]);
      goals.push(
        { scenario: '11 network', goal: `pullImage jobs 4 within 1.2x of the largest layer alone, ${release.label}`, result: `${r.pull4Largest.toFixed(2)}x`, met: r.pull4Largest <= 1.2 },
        { scenario: '11 network', goal: `extractImage jobs 4 within 1.2x of the largest layer alone, ${release.label}`, result: `${r.extract4Largest.toFixed(2)}x`, met: r.extract4Largest <= 1.2 },
        { scenario: '11 network', goal: `pullImage jobs 4 at least as fast as skopeo copy, ${release.label}`, result: `${r.pull4Skopeo.toFixed(2)}x`, met: r.pull4Skopeo <= 1.0 },
      );
    }
  } finally {
    relay.child.stdin!.end();
    await registry.stop();
  }
  const total = sizesMiB.reduce((a, b) => a + b, 0);
  const body = [
    `A real registry behind a relay (its own process) that paces each connection at ${rate / MB} MB/s after ${latencyMs} ms, ` +
      `and an image of 6 gzip layers of ${sizesMiB.join(', ')} MiB of noise (${total} MiB; image order ${order.map((i) => sizesMiB[i]).join(', ')}). ` +
      `Each variant spawns its own skopeo. \`largest\`: the largest layer alone (spawn, open, getBlob, drain). ` +
      `Seconds, median (min–max) of ${context.options.runs} interleaved rounds after a warm-up; ratios are medians of per-round ratios.`,
    '',
    table(['skopeo', 'largest (s)', 'pull jobs 1', 'pull jobs 4', 'extract jobs 1', 'extract jobs 4', 'skopeo copy → oci:'], rows, ['left', 'right', 'right', 'right', 'right', 'right', 'right']),
    '',
    table(['skopeo', 'pull 4 / largest', 'extract 4 / largest', 'pull 4 / skopeo', 'extract 4 / skopeo', 'pull 1 / pull 4'], ratioRows, ['left', 'right', 'right', 'right', 'right', 'right']),
    '',
    `Peak RSS growth of the benchmark process during pullImage/extractImage: median ${summarize(rss).median.toFixed(1)} MiB, max ${Math.max(...rss).toFixed(1)} MiB (goal < 64 MiB).`,
  ].join('\n');
  goals.push({ scenario: '11 network', goal: 'RSS growth during pullImage/extractImage < 64 MiB', result: `${Math.max(...rss).toFixed(1)} MiB`, met: Math.max(...rss) < 64 });
  return { title: '11. Network-bound pull and extract (#12)', body, goals };
}
