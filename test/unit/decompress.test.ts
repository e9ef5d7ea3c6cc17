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
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import * as zlib from 'node:zlib';
import { tempDir } from '../support/env.js';
import { decompress, decompressWith, detectCompression, zstdDecoders, ZstdFrameScanner, type ZstdDecoder } from '../../src/decompress.js';

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

      it('yields no empty chunk: a frame of no bytes gives nothing', async () => {
        const data = Buffer.concat([compress(Buffer.from('a')), compress(Buffer.alloc(0)), compress(Buffer.from('b'))]);
        const chunks: Buffer[] = [];
        for await (const chunk of decompressWith(chunked(data, [data.length]), decoder)) chunks.push(chunk);
        assert.equal(Buffer.concat(chunks).toString(), 'ab');
        assert.deepEqual(
          chunks.map((chunk) => chunk.length).filter((length) => length === 0),
          [],
        );
      });

      it('fails on a stream cut inside a frame', async () => {
        const data = Buffer.concat([compress(sampleText(100_000, 'x')), compress(sampleText(100_000, 'y'))]);
        for (const cut of [data.length - 1, data.length - 5000, Math.floor(data.length / 2) + 3]) {
          await assert.rejects(collect(decompressWith(chunked(data.subarray(0, cut), [8192]), decoder)), /zstd/);
        }
      });

      it('says where a stream ends inside a frame, also inside one streamed to the decoder (more than 64 KiB)', { skip: decoder === 'fzstd' && 'fzstd reports its own "unexpected EOF"' }, async () => {
        const noise = Buffer.concat(Array.from({ length: 7000 }, (_, i) => createHash('sha256').update(`n${i}`).digest()));
        const data = Buffer.concat([compress(sampleText(1000, 'x')), compress(noise)]);
        assert.ok(data.length > 200_000, 'the second frame is larger than the one-call limit');
        for (const cut of [data.length - 1, data.length - 100_000]) {
          await assert.rejects(collect(decompressWith(chunked(data.subarray(0, cut), [8192]), decoder)), { message: `zstd: the stream ends inside a frame (at byte ${cut})` });
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
        await assert.rejects(collect(decompressWith(chunked(data, [4096]), decoder)), (error: Error) => {
          assert.ok(error.cause instanceof Error, 'the decoder`s error is the cause');
          assert.equal(error.message, `zstd: ${error.cause.message}`);
          return true;
        });
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

/** The scanner's pieces for `data` fed in chunks of `size`: the frames, and every piece as it came. */
function scan(data: Buffer, size: number): { frames: Buffer[]; pieces: Buffer[] } {
  const scanner = new ZstdFrameScanner();
  const frames: Buffer[] = [];
  const pieces: Buffer[] = [];
  let current: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) {
    for (const piece of scanner.push(data.subarray(at, at + size))) {
      if (Buffer.isBuffer(piece)) {
        current.push(piece);
        pieces.push(piece);
      } else {
        frames.push(Buffer.concat(current));
        current = [];
      }
    }
  }
  scanner.end();
  return { frames, pieces };
}

describe('ZstdFrameScanner, each header field', () => {
  using dir = tempDir();
  /** `zstd` on a file (its size known: single-segment frames with a content size) rather than on stdin. */
  const compressFile = (data: Buffer, args: string[] = []): Buffer => {
    const file = join(dir.path, 'input');
    writeFileSync(file, data);
    return execFileSync('zstd', ['-q', '-c', ...args, file], { maxBuffer: 64 * 1024 * 1024 });
  };
  // A dictionary for frames that carry a dictionary ID (1 and 4 bytes of it).
  const samples: string[] = [];
  for (let i = 0; i < 200; i++) {
    samples.push(join(dir.path, `sample${i}`));
    writeFileSync(samples[i]!, sampleText(80, `s${i % 7}`));
  }
  const dictionary = (id: number) => {
    const file = join(dir.path, `dict${id}`);
    execFileSync('zstd', ['-q', '--train', ...samples, '-o', file, `--dictID=${id}`, '--maxdict=2048'], { stdio: 'ignore' });
    return readFileSync(file);
  };
  const [dict1, dict4] = [dictionary(77), dictionary(70_000)];
  const writeDict = (dict: Buffer) => {
    const file = join(dir.path, 'dict');
    writeFileSync(file, dict);
    return file;
  };
  /** A frame with a raw-literal-free RLE block: 5 x "x" (RFC 8878 3.1.1.2.2, block type 1). */
  const rle = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x05, 0x2b, 0x00, 0x00, 0x78]);

  const frames: Array<[string, Buffer, number, Buffer?]> = [
    // [what, frame, the descriptor byte it must have: proof the case is the one named]
    ['single segment, a 2-byte content size', compressFile(sampleText(1000, 'ss')), 0x64],
    ['not single segment, a 4-byte content size', compressFile(Buffer.concat([Buffer.alloc(1_100_000, 'a'), sampleText(700_000, 'big')]), ['-1']), 0x84],
    ['no checksum, not single segment, no content size', zstdCli(['-q', '-c', '--no-check'], sampleText(500, 'nc')), 0x00],
    ['a 1-byte dictionary ID', compressFile(sampleText(300, 's1'), ['-D', writeDict(dict1)]), 0x65, dict1],
    ['a 4-byte dictionary ID', compressFile(sampleText(300, 's2'), ['-D', writeDict(dict4)]), 0x67, dict4],
    ['an RLE block', rle, 0x20],
    ['no checksum, an empty last block ending the stream', zstdCli(['-q', '-c', '--no-check'], Buffer.alloc(0)), 0x20],
  ];

  it('the frames are what they are named (descriptor bytes; zstd -d decodes them)', () => {
    using here = tempDir();
    for (const [what, frame, descriptor, dict] of frames) {
      assert.equal(frame[4], descriptor, what);
      if (dict) writeFileSync(join(here.path, 'dict'), dict);
      zstdCli(['-d', '-q', '-c', ...(dict ? ['-D', join(here.path, 'dict')] : [])], frame);
    }
    assert.equal(reference(rle).toString(), 'xxxxx');
  });

  it('finds each frame whole, whatever the chunking, and no piece is empty', () => {
    const data = Buffer.concat(frames.map(([, frame]) => frame));
    for (const size of [1, 2, 3, 4, 5, 6, 7, 9, 13, 4096, data.length]) {
      const { frames: found, pieces } = scan(data, size);
      assert.deepEqual(found.map(sha), frames.map(([, frame]) => sha(frame)), `chunks of ${size}`);
      assert.equal(pieces.filter((piece) => piece.length === 0).length, 0, `chunks of ${size}: empty pieces`);
    }
  });

  it('hands out a frame that lies whole in one chunk as one view of that chunk', () => {
    const [, frame] = frames[0]!;
    for (const data of [frame, Buffer.concat([skippable(Buffer.from('toc')), frame])]) {
      const { pieces } = scan(data, data.length);
      assert.equal(pieces.length, 1);
      assert.equal(pieces[0]!.buffer, data.buffer, 'a view, not a copy');
      assert.deepEqual(pieces[0], frame);
    }
  });

  it('refuses bytes that start no frame, a reserved descriptor bit and a reserved block type, saying where', () => {
    const [, first] = frames[2]!;
    const garbage = Buffer.concat([first, Buffer.from('not a zstd frame')]);
    for (const size of [3, 4096]) {
      const magic = Buffer.from('not ').readUInt32LE(0).toString(16);
      assert.throws(() => scan(garbage, size), { message: `zstd: no frame starts at byte ${first.length} (magic ${magic})` }, `chunks of ${size}`);
    }
    const reservedBit = Buffer.concat([first, first]);
    reservedBit[first.length + 4]! |= 0x08;
    assert.throws(() => scan(reservedBit, 5), { message: `zstd: reserved bit set in the frame header at byte ${first.length + 4}` });
    const reservedType = Buffer.from(rle);
    reservedType[6] = 0x2b | 0x06; // block type 3
    assert.throws(() => scan(Buffer.concat([first, reservedType]), 7), { message: `zstd: reserved block type at byte ${first.length + 6}` });
  });
});

describe('the decoders on a frame they cannot decode', () => {
  // The RLE frame of the scanner's tests with its block type set to 3, reserved.
  const reserved = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x05, 0x2f, 0x00, 0x00, 0x78]);
  for (const decoder of ['node:zlib', 'fzstd'] as ZstdDecoder[]) {
    it(`${decoder}: fails with a message that says zstd (it does not hang)`, { skip: decoder === 'node:zlib' && !NODE_HAS_ZSTD ? `Node ${process.version} has no zstd in node:zlib` : false }, async () => {
      assert.throws(() => execFileSync('zstd', ['-d', '-q', '-c'], { input: reserved, stdio: 'pipe' }), 'the zstd CLI refuses it too');
      const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('decompress hangs')), 5000).unref());
      // More bytes after it: fzstd reads the block header when the next chunk comes.
      const data = Buffer.concat([reserved, Buffer.alloc(100)]);
      await assert.rejects(Promise.race([collect(decompressWith(chunked(data, [reserved.length, 100]), decoder)), timeout]), /^Error: zstd: /);
    });
  }
});

describe('detectCompression', () => {
  it('gzip and zstd by their magic, a skippable frame first as zstd, anything else none', () => {
    assert.equal(detectCompression(zlib.gzipSync('x')), 'gzip');
    assert.equal(detectCompression(compress(Buffer.from('x'))), 'zstd');
    for (let nibble = 0; nibble < 16; nibble++) assert.equal(detectCompression(skippable(Buffer.alloc(1), nibble)), 'zstd', `skippable ${nibble}`);
    for (const first of [0x00, 0x40, 0x60, 0xd0]) assert.equal(detectCompression(Buffer.from([first, 0x2a, 0x4d, 0x18])), 'none', first.toString(16));
    assert.equal(detectCompression(Buffer.from('ustar')), 'none');
    assert.equal(detectCompression(Buffer.alloc(0)), 'none');
  });
});

describe('decompressWith, the source', () => {
  /** An iterator over `chunks` that fails a next() called after it said done. */
  function strict(chunks: Buffer[]): AsyncIterable<Buffer> & { calls: number } {
    const state = { calls: 0 };
    return Object.assign(state, {
      [Symbol.asyncIterator]() {
        let at = 0;
        let done = false;
        return {
          async next(): Promise<IteratorResult<Buffer>> {
            state.calls++;
            if (done) throw new Error('next() after done');
            if (at < chunks.length) return { done: false, value: chunks[at++]! };
            done = true;
            return { done: true, value: undefined };
          },
        };
      },
    });
  }

  it('passes a source shorter than any magic through, and asks for no chunk after the end', async () => {
    for (const chunks of [[], [Buffer.from('ab')], [Buffer.from('a'), Buffer.from('bc')], [Buffer.from('abcd')], [Buffer.from('abcdef')]]) {
      const source = strict(chunks);
      assert.deepEqual(await collect(decompressWith(source, 'fzstd')), Buffer.concat(chunks));
      assert.equal(source.calls, chunks.length + 1);
    }
  });

  it('hands over uncompressed bytes once it has seen four, without waiting for more', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    async function* source() {
      yield Buffer.from('abcd');
      await held; // the rest comes only once the first four bytes are out
      yield Buffer.from('ef');
    }
    const out = decompressWith(source(), 'fzstd');
    const first = await Promise.race([out.next(), new Promise((resolve) => setTimeout(() => resolve('waits for more'), 2000).unref())]);
    assert.deepEqual(first, { done: false, value: Buffer.from('abcd') });
    release();
    assert.deepEqual(await collect(out), Buffer.from('ef'));
  });

  it('fails with the source`s error when the source fails inside a gzip stream (it does not hang)', async () => {
    const gz = zlib.gzipSync(sampleText(200_000, 'g'));
    async function* source() {
      yield gz.subarray(0, 1000);
      throw new Error('the blob stream broke');
    }
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('decompress hangs')), 5000).unref());
    await assert.rejects(Promise.race([collect(decompressWith(source(), 'fzstd')), timeout]), /the blob stream broke/);
  });

  it('decodes a zstd frame streamed to node:zlib (over 64 KiB compressed) into chunks of 256 KiB', { skip: !NODE_HAS_ZSTD && `Node ${process.version} has no zstd in node:zlib` }, async () => {
    const data = randomBytes(1024 * 1024); // incompressible: one frame of about 1 MiB, streamed
    const frame = compress(data);
    assert.ok(frame.length > 64 * 1024);
    const sizes: number[] = [];
    for await (const chunk of decompressWith(chunked(frame, [frame.length]), 'node:zlib')) sizes.push(chunk.length);
    assert.equal(Math.max(...sizes), 256 * 1024);
    assert.equal(sizes.reduce((a, b) => a + b), data.length);
  });

  it('node:zlib: a small frame comes out whole in one chunk (one synchronous call); one that decodes to over 1 MiB is streamed in chunks of 256 KiB', { skip: !NODE_HAS_ZSTD && `Node ${process.version} has no zstd in node:zlib` }, async () => {
    const sizesOf = async (data: Buffer): Promise<number[]> => {
      const frame = compress(data);
      assert.ok(frame.length <= 64 * 1024, `a small frame: ${frame.length} bytes`);
      const sizes: number[] = [];
      for await (const chunk of decompressWith(chunked(frame, [frame.length]), 'node:zlib')) sizes.push(chunk.length);
      return sizes;
    };
    assert.deepEqual(await sizesOf(Buffer.alloc(1024 * 1024, 'a')), [1024 * 1024]);
    const large = await sizesOf(Buffer.alloc(3 * 1024 * 1024 + 5, 'b'));
    assert.equal(Math.max(...large), 256 * 1024);
    assert.equal(large.reduce((a, b) => a + b), 3 * 1024 * 1024 + 5);
  });

  it('gunzips into chunks of 256 KiB, whichever the zstd decoder', async () => {
    const data = sampleText(1024 * 1024, 'c');
    const gz = zlib.gzipSync(data);
    for (const decoder of zstdDecoders()) {
      const sizes: number[] = [];
      for await (const chunk of decompressWith(chunked(gz, [gz.length]), decoder)) sizes.push(chunk.length);
      assert.equal(Math.max(...sizes), 256 * 1024, decoder);
      assert.equal(sizes.reduce((a, b) => a + b), data.length, decoder);
    }
  });
});
