/**
 * zstd layers decode fully on both decoders: node:zlib's (Node 22.15+, the
 * default where it exists) and fzstd (the fallback on Node 20). A zstd stream
 * is one or more frames with skippable frames anywhere between them; a
 * zstd:chunked layer is many frames plus skippable ones, and a reader that
 * stops at the end of the first frame (Node's own decoder does, and so did
 * bootc#2408's) loses the rest. The reference for every expected output is
 * the zstd CLI's decoder. scripts/test.sh runs this file on every Node of the
 * matrix.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import * as zlib from 'node:zlib';
import { tempDir } from '../support/env.js';
import { decompress, decompressWith, zstdDecoders, ZstdFrameScanner, type ZstdDecoder } from '../../src/decompress.js';

const NODE_HAS_ZSTD = typeof (zlib as { createZstdDecompress?: unknown }).createZstdDecompress === 'function';
const CHUNKED_LAYER = readFileSync(new URL("../../../test/fixtures/hello-image-zstd-chunked/blobs/sha256/30272bc1266d000b8fc85c8a227ba83ea07ce1ec23e487cea551f138d8d676e8", import.meta.url));

/** Text that compresses like a file tree does: repetitive, not constant. */
function sampleText(bytes: number, seed: string): Buffer {
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < bytes; i++) {
    const line = `${seed} line ${i} ${createHash('sha256').update(`${seed}${i % 977}`).digest('hex').slice(0, 20 + (i % 40))}\n`;
    lines.push(line);
    length += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

const zstdCli = (args: string[], input: Buffer): Buffer => execFileSync('zstd', args, { input, maxBuffer: 256 * 1024 * 1024 });
const compress = (data: Buffer, level = 3): Buffer => zstdCli([`-${level}`, '-q', '-c'], data);
/** What the zstd CLI decodes `data` to: the reference. */
const reference = (data: Buffer): Buffer => zstdCli(['-d', '-q', '-c'], data);

/** A skippable frame (magic 0x184D2A5?) holding `payload`. */
function skippable(payload: Buffer, nibble = 0): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(0x184d2a50 + nibble, 0);
  header.writeUInt32LE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/** Feeds `data` in chunks of the given sizes (cycled). */
function chunked(data: Buffer, sizes: number[]): AsyncIterable<Buffer> {
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const size = sizes[i % sizes.length]!;
    chunks.push(data.subarray(at, at + size));
    at += size;
  }
  return Readable.from(chunks, { objectMode: true });
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Multi-frame streams, each with the reference's decoding. */
function multiFrameCases(): Array<{ name: string; data: Buffer }> {
  const a = sampleText(3 * 1024 * 1024 + 17, 'a');
  const b = sampleText(200 * 1024, 'b');
  const c = sampleText(1, 'c');
  const [za, zb, zc] = [compress(a, 1), compress(b, 19), compress(c)];
  // pzstd (from Debian's zstd package) writes a skippable frame before each
  // frame of 2 MiB of input at level 1: a real multi-frame producer.
  const pzstd = execFileSync('pzstd', ['-1', '-p', '2', '-q', '-c'], { input: sampleText(9 * 1024 * 1024, 'p'), maxBuffer: 64 * 1024 * 1024 });
  // 2,000 files, one zstd run: `zstd -c FILE...` writes one frame per file.
  using dir = tempDir();
  const files: string[] = [];
  for (let i = 0; i < 2000; i++) {
    files.push(join(dir.path, `f${i}`));
    writeFileSync(files[i]!, sampleText(50 + (i % 300), `f${i % 13}`));
  }
  const many = execFileSync('zstd', ['-q', '-c', ...files], { maxBuffer: 64 * 1024 * 1024 });
  return [
    { name: 'frames concatenated by cat', data: Buffer.concat([za, zb, zc]) },
    { name: 'skippable frames before, between and after the frames', data: Buffer.concat([skippable(Buffer.from('toc')), za, skippable(Buffer.alloc(0), 15), zb, skippable(Buffer.alloc(70_000, 7), 3), zc, skippable(Buffer.from('end'))]) },
    { name: 'pzstd output (a skippable frame before every frame)', data: pzstd },
    { name: 'a zstd:chunked layer written by skopeo 1.22', data: CHUNKED_LAYER },
    { name: '2,000 small frames (one per file, as zstd:chunked writes them)', data: many },
    { name: 'an empty frame between two frames', data: Buffer.concat([zc, compress(Buffer.alloc(0)), zc]) },
    // Small compressed, large decoded: node:zlib's one-call path for small
    // frames must hand it to a streaming decoder instead.
    { name: 'a frame of a few hundred bytes that decodes to 8 MiB, then others', data: Buffer.concat([compress(Buffer.alloc(8 * 1024 * 1024)), zc, zb]) },
  ];
}

describe('zstd', () => {
  const cases = multiFrameCases();

  it('the test data really is multi-frame (zstd -l counts the frames)', () => {
    using dir = tempDir();
    for (const [i, { name, data }] of cases.entries()) {
      writeFileSync(join(dir.path, `${i}.zst`), data);
      const listing = execFileSync('zstd', ['-lv', join(dir.path, `${i}.zst`)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      const frames = Number(/# Zstandard Frames: (\d+)/.exec(listing)?.[1]);
      assert.ok(frames >= 3, `${name}: ${frames} frames`);
    }
  });

  it('decompress() decodes with node:zlib where Node has zstd (22.15+), with fzstd on Node 20', () => {
    assert.deepEqual(zstdDecoders(), NODE_HAS_ZSTD ? ['node:zlib', 'fzstd'] : ['fzstd']);
  });

  it('decompress() decodes every frame of a zstd:chunked layer (the default decoder of this Node)', async () => {
    const out = await collect(decompress(chunked(CHUNKED_LAYER, [64 * 1024])));
    assert.equal(sha(out), sha(reference(CHUNKED_LAYER)));
    assert.match(out.subarray(512 * 6).toString('latin1'), /obsolete/, 'the last file of the layer is there');
  });

  for (const decoder of ['node:zlib', 'fzstd'] as ZstdDecoder[]) {
    describe(decoder, { skip: decoder === 'node:zlib' && !NODE_HAS_ZSTD ? `Node ${process.version} has no zstd in node:zlib` : false }, () => {
      for (const { name, data } of cases) {
        it(`decodes all of ${name}, whatever the chunking`, async () => {
          const expected = sha(reference(data));
          for (const sizes of [[64 * 1024], [1], [3, 5, 7, 11, 4093], [data.length]]) {
            // One-byte chunks take long: only for the small streams.
            if (sizes[0] === 1 && data.length > 20_000) continue;
            const out = await collect(decompressWith(chunked(data, sizes), decoder));
            assert.equal(sha(out), expected, `chunks of ${sizes.join(',')} bytes`);
          }
        });
      }

      it('fails on a stream cut inside a frame', async () => {
        const data = Buffer.concat([compress(sampleText(100_000, 'x')), compress(sampleText(100_000, 'y'))]);
        for (const cut of [data.length - 1, data.length - 5000, Math.floor(data.length / 2) + 3]) {
          await assert.rejects(collect(decompressWith(chunked(data.subarray(0, cut), [8192]), decoder)), /zstd/);
        }
      });

      it('fails on bytes after the last frame that are not a frame', async () => {
        const data = Buffer.concat([compress(sampleText(10_000, 'x')), Buffer.from('not a zstd frame')]);
        await assert.rejects(collect(decompressWith(chunked(data, [4096]), decoder)), /zstd/);
      });

      // fzstd does not check content checksums; the layer's digest, which
      // covers the compressed bytes, is what catches corruption there.
      it('fails on a corrupted frame (the content checksum)', { skip: decoder === 'fzstd' && 'fzstd checks no content checksum' }, async () => {
        const data = Buffer.from(compress(sampleText(100_000, 'x')));
        data[data.length - 2]! ^= 0xff; // in the XXH64 checksum the CLI writes
        await assert.rejects(collect(decompressWith(chunked(data, [4096]), decoder)), /zstd/);
      });
    });
  }
});

describe('ZstdFrameScanner', () => {
  it('cuts a stream into its frames, dropping skippable ones, whatever the chunking', () => {
    const frames = [compress(Buffer.from('one')), compress(sampleText(300_000, 'two')), compress(Buffer.alloc(0))];
    const data = Buffer.concat([skippable(Buffer.from('x')), frames[0]!, skippable(Buffer.alloc(5)), frames[1]!, frames[2]!, skippable(Buffer.alloc(0))]);
    for (const size of [1, 2, 3, 4, 7, 8, 9, 4096, data.length]) {
      const scanner = new ZstdFrameScanner();
      const found: Buffer[] = [];
      let current: Buffer[] = [];
      for (let at = 0; at < data.length; at += size) {
        for (const piece of scanner.push(data.subarray(at, at + size))) {
          if (Buffer.isBuffer(piece)) current.push(piece);
          else {
            found.push(Buffer.concat(current));
            current = [];
          }
        }
      }
      scanner.end();
      assert.deepEqual(found.map(sha), frames.map(sha), `chunks of ${size}`);
    }
  });

  it('refuses a stream that ends inside a frame or a skippable frame', () => {
    for (const data of [compress(Buffer.from('abc')).subarray(0, 6), skippable(Buffer.alloc(10)).subarray(0, 12), Buffer.from([0x28, 0xb5])]) {
      const scanner = new ZstdFrameScanner();
      scanner.push(data);
      assert.throws(() => scanner.end(), /ends inside a frame/);
    }
  });
});
