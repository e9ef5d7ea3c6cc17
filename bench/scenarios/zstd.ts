/**
 * Scenario 7, zstd decoders: the same layer-like data (text, as file trees
 * compress) decompressed by node:zlib's zstd (Node 22.15+, the default there;
 * frame by frame, see src/decompress.ts) and by fzstd (the pure-JS fallback
 * the default on Node 20), each on every Node of the matrix, as
 *   - one zstd frame (how `skopeo copy --dest-compress-format zstd` writes a layer),
 *   - one frame per file of 16 KiB on average (how zstd:chunked writes one),
 * with gunzip of the same data for reference. Each measurement is a fresh
 * process (bench/zstd-child.ts) timing only the decompression of an
 * in-memory file. The baseline is fzstd on the same Node in the same round.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { interleave, mibPerSecond, pairedRatios } from '../harness.js';
import { BUILD_DIR, ROOT } from '../options.js';
import type { Context, Section } from '../scenario.js';
import { fmtSummary, mapSummary, summarize, table } from '../stats.js';

const CHILD = join(BUILD_DIR, 'zstd-child.js');

/** Layer-like data: `count` files of 4-28 KiB of text, deterministic. */
function makeFiles(dir: string, totalMiB: number): string[] {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  let total = 0;
  for (let i = 0; total < totalMiB * 1024 * 1024; i++) {
    const size = 4096 + ((i * 7919) % (24 * 1024));
    const lines: string[] = [];
    for (let length = 0, n = 0; length < size; n++) {
      const line = `${i}:${n} ${createHash('sha256').update(`${i % 97}/${n % 113}`).digest('base64').slice(0, 10 + (n % 50))}\n`;
      lines.push(line);
      length += line.length;
    }
    const path = join(dir, `f${String(i).padStart(6, '0')}`);
    writeFileSync(path, lines.join('').slice(0, size));
    files.push(path);
    total += size;
  }
  return files;
}

/** The three fixtures, made once into the bench cache. */
function fixtures(cacheDir: string, mib: number): { single: string; chunked: string; gzip: string; bytes: number } {
  const dir = join(cacheDir, `zstd-${mib}MiB`);
  const out = { single: join(dir, 'single.zst'), chunked: join(dir, 'chunked.zst'), gzip: join(dir, 'layer.gz'), bytes: 0 };
  if (!existsSync(out.gzip)) {
    rmSync(dir, { recursive: true, force: true });
    const files = makeFiles(join(dir, 'files'), mib);
    const concatenated = join(dir, 'layer');
    execFileSync('sh', ['-c', 'cat "$@" > "$0"', concatenated, ...files]);
    execFileSync('zstd', ['-q', '-3', concatenated, '-o', out.single]);
    // zstd -c FILE... writes one frame per file.
    execFileSync('sh', ['-c', 'zstd -q -3 -c "$@" > "$0"', out.chunked, ...files]);
    execFileSync('sh', ['-c', 'gzip -6 -c "$1" > "$0"', out.gzip, concatenated]);
    rmSync(join(dir, 'files'), { recursive: true });
    rmSync(concatenated);
  }
  out.bytes = Number(execFileSync('sh', ['-c', 'zstd -dc "$0" | wc -c', out.single], { encoding: 'utf8' }).trim());
  return out;
}

export async function zstd(context: Context): Promise<Section> {
  const mib = context.options.quick ? 16 : 128;
  const fixture = fixtures(context.options.cacheDir, mib);
  const frames = execFileSync('zstd', ['-lv', fixture.chunked], { encoding: 'utf8' }).match(/# Zstandard Frames: (\d+)/)?.[1] ?? '?';
  const nodes = [process.execPath, ...readExtraNodes()];
  const rows: string[][] = [];
  for (const node of nodes) {
    const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    const hasNative = execFileSync(node, ['-p', "typeof require('node:zlib').createZstdDecompress"], { encoding: 'utf8' }).trim() === 'function';
    const run = (decoder: string, file: string) => async (): Promise<number> => {
      const report = JSON.parse(execFileSync(node, [CHILD, decoder, file], { encoding: 'utf8' })) as { seconds: number; bytes: number };
      if (report.bytes !== fixture.bytes) throw new Error(`${decoder} on ${version} decoded ${report.bytes} bytes of ${file}, not ${fixture.bytes}`);
      return report.seconds;
    };
    type Variant = 'fzstd single' | 'fzstd chunked' | 'node:zlib single' | 'node:zlib chunked' | 'gunzip';
    const variants: Array<readonly [Variant, () => Promise<number>]> = [
      ['fzstd single', run('fzstd', fixture.single)],
      ['fzstd chunked', run('fzstd', fixture.chunked)],
      ['gunzip', run('gzip', fixture.gzip)],
    ];
    if (hasNative) variants.push(['node:zlib single', run('node:zlib', fixture.single)], ['node:zlib chunked', run('node:zlib', fixture.chunked)]);
    const samples = (await interleave(context.options.runs, variants, (text) => context.progress(`zstd ${version}: ${text}`))) as Partial<Record<Variant, number[]>>;
    const speed = (seconds: number[]) => fmtSummary(mapSummary(summarize(seconds), (s) => mibPerSecond(fixture.bytes, s)));
    const vs = (seconds: number[], base: number[]) => {
      const r = summarize(pairedRatios(base, seconds));
      return `${r.median.toFixed(2)}x (${r.min.toFixed(2)}–${r.max.toFixed(2)})`;
    };
    for (const shape of ['single', 'chunked'] as const) {
      const base = samples[`fzstd ${shape}`]!;
      rows.push([version, shape === 'single' ? 'one frame' : `${frames} frames`, 'fzstd (baseline)', speed(base), '1.00x']);
      const native = samples[`node:zlib ${shape}`];
      rows.push([version, shape === 'single' ? 'one frame' : `${frames} frames`, 'node:zlib', native ? speed(native) : 'n/a (no zstd in node:zlib)', native ? vs(native, base) : 'n/a']);
    }
    rows.push([version, 'gzip -6, same data', 'gunzip (node:zlib)', speed(samples.gunzip!), vs(samples.gunzip!, samples['fzstd single']!)]);
  }
  const body = [
    `${mib} MiB of layer-like text (${frames} files of 4–28 KiB), compressed by the zstd CLI at level 3 as one frame and as one frame per file (zstd:chunked's shape), and by gzip -6. ` +
      `Decompressed from memory through the library's own decompression (src/decompress.ts) in a fresh process per measurement; MiB/s of output, median (min–max) of ${context.options.runs} rounds after a warm-up round. ` +
      `Speed vs fzstd is the median (min–max) of per-round ratios against fzstd on the same Node and data (gunzip: against fzstd's one frame).`,
    '',
    table(['Node', 'zstd stream', 'decoder', 'MiB/s', 'speed vs fzstd'], rows, ['left', 'left', 'left', 'right', 'right']),
  ].join('\n');
  return { title: '7. zstd decoders', body, goals: [] };
}

function readExtraNodes(): string[] {
  const list = join(ROOT, '.cache', 'node', 'list');
  if (!existsSync(list) || statSync(list).size === 0) return [];
  return execFileSync('cat', [list], { encoding: 'utf8' }).split('\n').filter(Boolean).map((path) => join(ROOT, path));
}
