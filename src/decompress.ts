/**
 * Layer decompression chosen by the stream's magic bytes (media types lie:
 * Docker's "tar" layers are often gzip). zstd uses Node's own decoder where it
 * exists (node:zlib, Node >= 22.15) and otherwise fzstd, a pure-JS decoder.
 *
 * A zstd stream is one or more frames, and skippable frames may sit anywhere
 * between them: a zstd:chunked layer is one frame per file (or run of small
 * files) with its table of contents in skippable frames. Node's decoder stops
 * at the end of the FIRST frame (nodejs/node#64741; the same bug as
 * bootc#2408), so ZstdFrameScanner finds the frame boundaries and each frame
 * goes to a decoder of its own.
 */
import { Readable, Transform, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import { Decompress } from 'fzstd';

export type Compression = 'gzip' | 'zstd' | 'none';

/** The zstd decoders: Node's own (22.15+) and the pure-JS fallback. */
export type ZstdDecoder = 'node:zlib' | 'fzstd';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

export function detectCompression(head: Uint8Array): Compression {
  const starts = (magic: number[]) => magic.every((byte, i) => head[i] === byte);
  if (starts(GZIP_MAGIC)) return 'gzip';
  // A zstd stream may begin with a skippable frame (pzstd's do): magic 0x184D2A5?.
  if (starts(ZSTD_MAGIC) || (((head[0] ?? 0) & 0xf0) === 0x50 && starts([head[0]!, 0x2a, 0x4d, 0x18]))) return 'zstd';
  return 'none';
}

type NodeZstd = { createZstdDecompress?: (options?: zlib.ZlibOptions) => Transform; zstdDecompressSync?: (data: Buffer, options?: { maxOutputLength?: number }) => Buffer };
const nodeZstd = zlib as unknown as NodeZstd;

/** The zstd decoders this Node has, the default first. */
export function zstdDecoders(): ZstdDecoder[] {
  return nodeZstd.createZstdDecompress && nodeZstd.zstdDecompressSync ? ['node:zlib', 'fzstd'] : ['fzstd'];
}

/**
 * Decompresses a layer stream, choosing the codec from its first bytes. Use
 * as a step of `stream.pipeline`.
 */
export function decompress(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  return decompressWith(source, zstdDecoders()[0]!);
}

/** decompress() with a given zstd decoder (tests and the bench compare them). */
export async function* decompressWith(source: AsyncIterable<Buffer>, zstd: ZstdDecoder): AsyncGenerator<Buffer> {
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
  } else if (compression === 'zstd' && zstd === 'node:zlib') {
    yield* zstdFrameByFrame(replay());
  } else {
    yield* through(compression === 'gzip' ? zlib.createGunzip({ chunkSize: 256 * 1024 }) : new FzstdDecompress(), replay());
  }
}

/** Pipes `input` through `decoder`, yielding what comes out. */
async function* through(decoder: Transform, input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const readable = Readable.from(input, { objectMode: false });
  readable.once('error', (error) => decoder.destroy(error));
  readable.pipe(decoder);
  yield* decoder;
}

/** Frames whose compressed bytes are all at hand and at most this long are decoded in one synchronous call. */
const SYNC_FRAME_BYTES = 64 * 1024;
/** ... unless they decode to more than this: then they are streamed like the others. */
const SYNC_OUTPUT_BYTES = 1024 * 1024;

/** zstd through node:zlib, one decoder per frame; skippable frames are dropped. */
async function* zstdFrameByFrame(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const scanner = new ZstdFrameScanner();
  const pieces: Piece[] = [];
  const iterator = input[Symbol.asyncIterator]();
  let ended = false;
  /** The next piece, reading input as needed; null at the end of the input. */
  const next = async (): Promise<Piece | null> => {
    while (pieces.length === 0) {
      if (ended) return null;
      const chunk = await iterator.next();
      if (chunk.done) {
        ended = true;
        scanner.end();
      } else {
        pieces.push(...scanner.push(chunk.value));
      }
    }
    return pieces.shift()!;
  };
  const decompressSync = nodeZstd.zstdDecompressSync!;
  for (let piece = await next(); piece !== null; piece = await next()) {
    if (piece === FRAME_END) continue;
    // Gather a small frame whole (it may span chunks): one synchronous call
    // decodes it, with no stream to set up (zstd:chunked has thousands).
    const gathered: Buffer[] = [piece];
    let gatheredBytes = piece.length;
    let frameDone = false;
    while (gatheredBytes <= SYNC_FRAME_BYTES) {
      const more = await next();
      if (more === FRAME_END) {
        frameDone = true;
        break;
      }
      if (more === null) throw new Error('zstd: the stream ends inside a frame');
      gathered.push(more);
      gatheredBytes += more.length;
    }
    if (frameDone) {
      let out: Buffer | null = null;
      try {
        out = decompressSync(gathered.length === 1 ? gathered[0]! : Buffer.concat(gathered, gatheredBytes), { maxOutputLength: SYNC_OUTPUT_BYTES });
      } catch (error) {
        // Larger than SYNC_OUTPUT_BYTES decoded: streamed below instead.
        if ((error as { code?: string }).code !== 'ERR_BUFFER_TOO_LARGE') throw zstdError(error);
      }
      if (out) {
        if (out.length) yield out;
        continue;
      }
    }
    async function* frame(): AsyncGenerator<Buffer> {
      yield* gathered;
      while (!frameDone) {
        const more = await next();
        if (more === FRAME_END) frameDone = true;
        else if (more === null) throw new Error('zstd: the stream ends inside a frame');
        else yield more;
      }
    }
    try {
      yield* through(nodeZstd.createZstdDecompress!({ chunkSize: 256 * 1024 }), frame());
    } catch (error) {
      throw zstdError(error);
    }
    if (!frameDone) throw new Error('zstd: the decoder ended before the end of its frame');
  }
}

function zstdError(error: unknown): Error {
  const message = (error as Error).message;
  return message.startsWith('zstd: ') ? (error as Error) : new Error(`zstd: ${message}`, { cause: error });
}

/** Marks the end of a frame in ZstdFrameScanner's output. */
const FRAME_END: unique symbol = Symbol('frame end');
type Piece = Buffer | typeof FRAME_END;

const enum State {
  Magic,
  SkippableSize,
  Skip,
  FrameHeaderDescriptor,
  Pass,
  BlockHeader,
}

/**
 * Splits a zstd stream into its frames (RFC 8878 section 3.1) without
 * decoding them: each frame's bytes, then FRAME_END. Skippable frames are
 * dropped. Output buffers are views of the input where they can be.
 */
export class ZstdFrameScanner {
  #state = State.Magic;
  /** Header bytes gathered across chunks (at most 14). */
  readonly #header = Buffer.alloc(16);
  #headerLength = 0;
  /** Bytes to pass (Pass) or drop (Skip) before the next header. */
  #remaining = 0;
  /** What follows the current Pass: a block header, or the end of the frame. */
  #afterPass: State.BlockHeader | State.Magic = State.BlockHeader;
  // Stryker disable next-line BooleanLiteral: never read before a frame header sets it
  #checksum = false;
  #offset = 0;

  /** The pieces of `chunk`: frame bytes and FRAME_END markers. */
  push(chunk: Buffer): Piece[] {
    const out: Piece[] = [];
    // Start of the frame bytes being passed in this chunk: a frame that goes
    // on from the previous chunk goes on from byte 0.
    let runStart = this.#inFrame() ? 0 : -1;
    const flush = (end: number) => {
      if (runStart >= 0 && end > runStart) out.push(chunk.subarray(runStart, end));
      runStart = -1;
    };
    let at = 0;
    // A Pass or Skip of zero bytes (an empty skippable frame, an empty last
    // block) completes even at the end of a chunk.
    while (at < chunk.length || (this.#remaining === 0 && (this.#state === State.Pass || this.#state === State.Skip))) {
      switch (this.#state) {
        case State.Magic:
        case State.SkippableSize:
        case State.FrameHeaderDescriptor:
        case State.BlockHeader: {
          const need = this.#state === State.FrameHeaderDescriptor ? 1 : this.#state === State.BlockHeader ? 3 : 4;
          const take = Math.min(need - this.#headerLength, chunk.length - at);
          chunk.copy(this.#header, this.#headerLength, at, at + take);
          this.#headerLength += take;
          at += take;
          if (this.#headerLength < need) break;
          this.#headerLength = 0;
          if (this.#state === State.Magic) {
            const magic = this.#header.readUInt32LE(0);
            if (magic === 0xfd2fb528) {
              // The magic is frame bytes too: pass it with what follows when it is all in this chunk.
              if (at >= 4 && take === 4) runStart = at - 4;
              else {
                out.push(Buffer.from(ZSTD_MAGIC));
                runStart = at;
              }
              this.#state = State.FrameHeaderDescriptor;
            } else if ((magic & 0xfffffff0) === 0x184d2a50) {
              this.#state = State.SkippableSize;
            } else {
              throw new Error(`zstd: no frame starts at byte ${this.#offset + at - 4} (magic ${magic.toString(16)})`);
            }
          } else if (this.#state === State.SkippableSize) {
            this.#remaining = this.#header.readUInt32LE(0);
            this.#state = State.Skip;
          } else if (this.#state === State.FrameHeaderDescriptor) {
            const descriptor = this.#header[0]!;
            const singleSegment = (descriptor & 0x20) !== 0;
            if (descriptor & 0x08) throw new Error(`zstd: reserved bit set in the frame header at byte ${this.#offset + at - 1}`);
            this.#checksum = (descriptor & 0x04) !== 0;
            const contentSizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][descriptor >> 6]!;
            const dictionaryBytes = [0, 1, 2, 4][descriptor & 0x03]!;
            this.#remaining = (singleSegment ? 0 : 1) + dictionaryBytes + contentSizeBytes;
            this.#afterPass = State.BlockHeader;
            this.#state = State.Pass;
          } else {
            const header = this.#header[0]! | (this.#header[1]! << 8) | (this.#header[2]! << 16);
            const last = (header & 1) !== 0;
            const type = (header >> 1) & 3;
            const size = header >>> 3;
            if (type === 3) throw new Error(`zstd: reserved block type at byte ${this.#offset + at - 3}`);
            this.#remaining = (type === 1 ? 1 : size) + (last && this.#checksum ? 4 : 0);
            this.#afterPass = last ? State.Magic : State.BlockHeader;
            this.#state = State.Pass;
          }
          break;
        }
        case State.Skip:
        case State.Pass: {
          const take = Math.min(this.#remaining, chunk.length - at);
          at += take;
          this.#remaining -= take;
          if (this.#remaining > 0) break;
          if (this.#state === State.Skip) {
            this.#state = State.Magic;
          } else if (this.#afterPass === State.Magic) {
            flush(at);
            out.push(FRAME_END);
            this.#state = State.Magic;
          } else {
            this.#state = State.BlockHeader;
          }
          break;
        }
      }
    }
    if (this.#inFrame()) flush(at);
    this.#offset += chunk.length;
    return out;
  }

  /** Inside a zstd frame (not between frames, not in a skippable one). */
  #inFrame(): boolean {
    return this.#state !== State.Magic && this.#state !== State.SkippableSize && this.#state !== State.Skip;
  }

  /** Throws unless the stream ended between frames. */
  end(): void {
    if (this.#state !== State.Magic || this.#headerLength !== 0) throw new Error(`zstd: the stream ends inside a frame (at byte ${this.#offset})`);
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
