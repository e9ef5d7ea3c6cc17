/**
 * Layer decompression chosen by the stream's magic bytes (media types lie:
 * Docker's "tar" layers are often gzip). zstd uses Node's own decoder where it
 * exists (Node >= 22.15) and otherwise fzstd, a pure-JS decoder that installs
 * without downloading binaries.
 */
import { Readable, Transform, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import { Decompress } from 'fzstd';

export type Compression = 'gzip' | 'zstd' | 'none';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

export function detectCompression(head: Uint8Array): Compression {
  const starts = (magic: number[]) => magic.every((byte, i) => head[i] === byte);
  if (starts(GZIP_MAGIC)) return 'gzip';
  if (starts(ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

/**
 * Decompresses a layer stream, choosing the codec from its first bytes. Use
 * as a step of `stream.pipeline`.
 */
export async function* decompress(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const chunks = source[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let headLength = 0;
  let exhausted = false;
  while (headLength < ZSTD_MAGIC.length) {
    const next = await chunks.next();
    if (next.done) {
      exhausted = true;
      break;
    }
    head.push(next.value);
    headLength += next.value.length;
  }
  async function* replay(): AsyncGenerator<Buffer> {
    yield* head;
    if (exhausted) return;
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
  }
  const compression = detectCompression(Buffer.concat(head, headLength));
  if (compression === 'none') {
    yield* replay();
    return;
  }
  const decoder = createDecompressor(compression);
  const input = Readable.from(replay(), { objectMode: false });
  input.once('error', (error) => decoder.destroy(error));
  input.pipe(decoder);
  yield* decoder;
}

export function createDecompressor(compression: Compression): Transform {
  switch (compression) {
    case 'gzip':
      return zlib.createGunzip({ chunkSize: 256 * 1024 });
    case 'zstd': {
      const native = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;
      return native ? native() : new FzstdDecompress();
    }
    case 'none':
      return new Transform({ transform: (chunk: Buffer, _encoding, done) => done(null, chunk) });
  }
}

/** fzstd's streaming decoder as a Transform. */
class FzstdDecompress extends Transform {
  readonly #decoder = new Decompress((data: Uint8Array) => {
    this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  });

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#decoder.push(chunk);
      callback();
    } catch (error) {
      callback(new Error(`zstd: ${(error as Error).message}`));
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.#decoder.push(new Uint8Array(0), true);
      callback();
    } catch (error) {
      callback(new Error(`zstd: ${(error as Error).message}`));
    }
  }
}
