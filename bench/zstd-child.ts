/**
 * One timed decompression in a fresh process, for bench/scenarios/zstd.ts:
 * `node zstd-child.js DECODER FILE` reads FILE into memory, then times
 * decompressWith (the library's own layer decompression) over it in 64 KiB
 * chunks, and prints {"seconds", "bytes"} as JSON. DECODER is node:zlib,
 * fzstd, or gzip (FILE is gzip; the library's gunzip).
 */
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { decompressWith, type ZstdDecoder } from '../src/decompress.js';

const [decoder, file] = process.argv.slice(2) as [string, string];
const data = readFileSync(file);
const chunks: Buffer[] = [];
for (let at = 0; at < data.length; at += 64 * 1024) chunks.push(data.subarray(at, at + 64 * 1024));
const start = process.hrtime.bigint();
let bytes = 0;
for await (const out of decompressWith(Readable.from(chunks, { objectMode: true }), decoder === 'gzip' ? 'fzstd' : (decoder as ZstdDecoder))) bytes += out.length;
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
process.stdout.write(JSON.stringify({ seconds, bytes }) + '\n');
