// Equivalent survivors of the core wire and state files (src/transport.ts,
// src/protocol.ts, src/extract/extract-state.ts, src/extract/ordered-apply.ts;
// format: scripts/mutation/equivalent.mjs). Argued in MUTATION.md, section
// "ninth (branch mutate10): core"; ordered-apply's first in "seventh", decompress's
// in "fifth (branch mutate6)".
const T = 'src/transport.ts';
const OA = 'src/extract/ordered-apply.ts';
const D = 'src/decompress.ts';
const ENOTCONN_WHY =
  "a send on our end of a socketpair gives ENOTCONN only once the socket left ESTABLISHED, which Linux never does to a SOCK_SEQPACKET socketpair (peer gone: EPIPE, or ECONNRESET once when it left a packet unread; checked on a real socketpair, kernel 6.18)";
const EMSGTRUNC_WHY =
  "the addon learns each packet's length with MSG_PEEK|MSG_TRUNC and receives it into a buffer of that size, and only we read the socket, so MSG_TRUNC never comes (a 100 KB reply arrives whole: test/fake-proxy.test.ts 'huge valid reply'); ECTRUNC, too many fds, is the branch's real case and is tested";
export const EQUIVALENT = [
  // --- transport.ts
  { file: T, mutator: 'ConditionalExpression', original: "code === 'ENOTCONN'", replacement: 'false', why: ENOTCONN_WHY },
  { file: T, mutator: 'StringLiteral', original: "'ENOTCONN'", replacement: '""', why: ENOTCONN_WHY },
  { file: T, mutator: 'ConditionalExpression', original: "error.code === 'EMSGTRUNC'", replacement: 'false', why: EMSGTRUNC_WHY },
  { file: T, mutator: 'StringLiteral', original: "'EMSGTRUNC'", replacement: '""', why: EMSGTRUNC_WHY },
  // --- protocol.ts
  {
    file: 'src/protocol.ts',
    mutator: 'EqualityOperator',
    original: 'i < Math.max(pa.length, pb.length)',
    replacement: 'i <= Math.max(pa.length, pb.length)',
    why: 'the extra step past both versions compares (undefined ?? 0) with (undefined ?? 0): a difference of 0, so the loop goes on to return 0 as before',
  },
  // --- extract-state.ts
  {
    file: 'src/extract/extract-state.ts',
    mutator: 'BlockStatement',
    original: '{ return undefined; // not ours, or torn by hand: start over }',
    replacement: '{}',
    why: 'an empty catch falls off the end of the async function, which returns undefined as well',
  },
  // --- ordered-apply.ts (argued in MUTATION.md, "seventh")
  {
    file: OA,
    mutator: 'ConditionalExpression',
    original: 'this.#spooled.get(position) === spool',
    replacement: 'true',
    why: "the entry differs from this take's own spool only if a second take of the same position began before the first settled; the only caller (transferBlob) takes again only from withRetry, after the attempt settled",
  },
  {
    file: OA,
    mutator: 'ConditionalExpression',
    original: 'this.#failure !== undefined',
    replacement: 'false',
    why: "`done` is asked only by #pump's finally, to remove a spool file; only take's catch fails a spool, and it removes the file itself right after (force: a second removal adds nothing)",
  },
  {
    file: OA,
    mutator: 'ArithmeticOperator',
    original: 'this.#written - at',
    replacement: 'this.#written + at',
    why: "the read is still at most SPOOL_CHUNK and read() returns only the bytes the file holds, written in order: the same bytes yielded in the same order, from a buffer up to 128 KiB instead of smaller",
  },
  // --- decompress.ts (argued in MUTATION.md, "fifth (branch mutate6)"; re-checked in "ninth")
  {
    file: D,
    mutator: 'LogicalOperator',
    original: 'nodeZstd.createZstdDecompress && nodeZstd.zstdDecompressSync',
    replacement: 'nodeZstd.createZstdDecompress || nodeZstd.zstdDecompressSync',
    why: 'node:zlib gained createZstdDecompress and zstdDecompressSync in the same releases (22.15, 23.8): every Node has both or neither (checked on 20.20, 22.23, 24.21)',
  },
  {
    file: D,
    mutator: 'StringLiteral',
    original: "'zstd: the stream ends inside a frame'",
    replacement: '""',
    why: "next() never returns null inside a frame: at the input's end it calls scanner.end(), which throws `zstd: the stream ends inside a frame (at byte N)` first",
  },
  {
    file: D,
    mutator: 'ConditionalExpression',
    original: '!frameDone',
    replacement: 'false',
    why: "the decoder's output ends only after its input, frame(), has ended, and frame() ends only at FRAME_END (setting frameDone) or by throwing",
  },
  {
    file: D,
    mutator: 'StringLiteral',
    original: "'zstd: the decoder ended before the end of its frame'",
    replacement: '""',
    why: 'unreachable, as above: the decoder is given exactly one frame and ends only after its input did, at FRAME_END',
  },
  {
    file: D,
    mutator: 'UnaryOperator',
    original: '-1',
    replacement: '+1',
    why: "runStart's \"no run\" value is never read: every flush (a frame's end, a chunk's end inside a frame) comes after a magic that set runStart or in a chunk that began inside a frame (runStart 0)",
  },
  {
    file: D,
    mutator: 'ConditionalExpression',
    original: 'runStart >= 0',
    replacement: 'true',
    why: 'flush() is never called with runStart -1 (see the -1 entry): the guard never decides anything',
  },
  {
    file: D,
    mutator: 'ConditionalExpression',
    original: 'this.#inFrame()',
    replacement: 'true',
    why: "outside a frame at a chunk's end runStart is -1 (a frame's end flushed and reset it, or none began), so flush() there pushes nothing",
  },
  {
    file: D,
    mutator: 'LogicalOperator',
    original: 'at >= 4 && take === 4',
    replacement: 'at >= 4 || take === 4',
    why: 'take === 4 means all four magic bytes came from this chunk, so at >= 4; and a magic split across chunks ends at the start of this one, so at = take < 4: the two tests never differ',
  },
  { file: D, mutator: 'ConditionalExpression', original: 'at >= 4', replacement: 'true', why: 'take === 4 implies at >= 4 (see the || entry)' },
  { file: D, mutator: 'ConditionalExpression', original: 'take === 4', replacement: 'true', why: 'at >= 4 implies take === 4 here: a magic split across chunks ends at the start of this one, at = take < 4 (see the || entry)' },
];
