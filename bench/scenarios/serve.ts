/**
 * Scenario 12, serve: `skopeo copy` pulling a 4-layer image through
 * `containers-image-proxy serve` (a child process, one per release, in front
 * of that release's skopeo) vs `skopeo copy` straight from the same `oci:`
 * layout, both into a fresh `dir:` (which keeps blobs as they come: an
 * `oci:` destination would compress the uncompressed layers), interleaved
 * round by round. Then HEAD manifest requests per second with 16 concurrent
 * keep-alive clients, against `GET /v2/` on the same server in the same run
 * (the HTTP stack alone, no proxy call).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { interleave, pairedRatios, runCommand, timedInScratch } from '../harness.js';
import { ROOT, type Release } from '../options.js';
import { sizeLabel, type Context, type Goal, type Section } from '../scenario.js';
import { fmtSummary, summarize, table } from '../stats.js';

const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const CLIENTS = 16;
const RPS_SECONDS = 3;

/** `serve --map bench=oci:LAYOUT` on a free port, for one release; its port and a stop function. */
async function startServe(release: Release, layout: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', '--map', `bench=oci:${layout}`, '--skopeo', release.path, '--quiet', '--tag-ttl', '60'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
      const match = /serving on http:\/\/127\.0\.0\.1:(\d+)\//.exec(stderr);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    port,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Requests per second of `method path` from `clients` keep-alive clients for `seconds`. */
async function requestsPerSecond(port: number, method: string, path: string, clients: number, seconds: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path, agent }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`${method} ${path}: ${res.statusCode}`));
        res.resume().once('end', () => resolve());
      });
      req.once('error', reject);
      req.end();
    });
  let done = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) {
        await one();
        done++;
      }
    }),
  );
  agent.destroy();
  return done / ((performance.now() - started) / 1000);
}

export async function serve(context: Context): Promise<Section> {
  const mib = context.options.serveLayerMiB;
  const image = context.fixtures.layers(4, mib);
  const layout = image.reference.slice('oci:'.length, image.reference.lastIndexOf(':'));
  const scratch = join(context.options.cacheDir, 'scratch', 'serve');
  const copyRows: string[][] = [];
  const rpsRows: string[][] = [];
  const goals: Goal[] = [];
  for (const release of context.releases) {
    const server = await startServe(release, layout);
    try {
      const through = `docker://127.0.0.1:${server.port}/bench:${image.tag}`;
      const samples = await interleave(
        context.options.runs,
        [
          ['serve', () => timedInScratch(scratch, (dir) => runCommand(release.path, ['copy', '--quiet', '--src-tls-verify=false', through, `dir:${join(dir, 'out')}`]))],
          ['skopeo', () => timedInScratch(scratch, (dir) => runCommand(release.path, ['copy', '--quiet', image.reference, `dir:${join(dir, 'out')}`]))],
        ] as const,
        (text) => context.progress(`serve ${release.label}: ${text}`),
      );
      const ratio = summarize(pairedRatios(samples.serve, samples.skopeo));
      copyRows.push([release.label, fmtSummary(summarize(samples.serve), 2), fmtSummary(summarize(samples.skopeo), 2), `${ratio.median.toFixed(2)}x (${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)})`]);
      goals.push({ scenario: '12 serve', goal: `skopeo copy through serve within 1.3x of skopeo copy straight, ${release.label}`, result: `${ratio.median.toFixed(2)}x`, met: ratio.median <= 1.3 });

      const manifestPath = `/v2/bench/manifests/${image.tag}`;
      await requestsPerSecond(server.port, 'HEAD', manifestPath, CLIENTS, 0.5); // warm: the tag resolved, connections open
      const head: number[] = [];
      const base: number[] = [];
      for (let round = 0; round < context.options.runs; round++) {
        head.push(await requestsPerSecond(server.port, 'HEAD', manifestPath, CLIENTS, RPS_SECONDS));
        base.push(await requestsPerSecond(server.port, 'GET', '/v2/', CLIENTS, RPS_SECONDS));
      }
      const headRatio = summarize(pairedRatios(head, base));
      rpsRows.push([release.label, fmtSummary(summarize(head), 0), fmtSummary(summarize(base), 0), `${headRatio.median.toFixed(2)}x`]);
    } finally {
      await server.stop();
    }
  }
  const body = [
    `A 4-layer image of ${sizeLabel(mib * 4)} (uncompressed layers) from an \`oci:\` layout into a fresh \`dir:\`: ` +
      `\`skopeo copy docker://127.0.0.1:PORT/bench:TAG\` through \`containers-image-proxy serve\` (its own process, in front of the same skopeo release) ` +
      `vs \`skopeo copy oci:…\` straight. Seconds are median (min–max) of ${context.options.runs} interleaved rounds after a warm-up; the ratio is the median of per-round ratios.`,
    '',
    table(['skopeo', 'through serve (s)', 'straight (s)', 'serve / straight'], copyRows, ['left', 'right', 'right', 'right']),
    '',
    `HEAD manifest requests per second, ${CLIENTS} concurrent keep-alive clients for ${RPS_SECONDS} s per round (${context.options.runs} rounds), ` +
      'vs `GET /v2/` on the same server in the same rounds (the HTTP stack alone: no proxy call).',
    '',
    table(['skopeo', 'HEAD manifest (req/s)', 'GET /v2/ (req/s)', 'HEAD / base'], rpsRows, ['left', 'right', 'right', 'right']),
  ].join('\n');
  return { title: '12. serve: skopeo copy through the registry server', body, goals };
}
