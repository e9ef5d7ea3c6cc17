// Equivalent survivors in src/blobs/ (format: scripts/mutation/equivalent.mjs).
// finish-pipe-stream's argued first in MUTATION.md ("fourth (branch mutate5)"),
// each re-checked against the current code in "ninth (branch mutate10): core".
const FP = 'src/blobs/finish-pipe-stream.ts';
const PAUSE_SIZE_WHY =
  'it pauses also when all `size` bytes are in, and the block right below resumes the pipe in the same call (no chunk comes between: BlobPipe emits none while paused)';
export const EQUIVALENT = [
  // --- finish-pipe-stream.ts
  {
    file: FP,
    mutator: 'EqualityOperator',
    original: 'room > 0',
    replacement: 'room >= 0',
    why: "at room 0 it pushes an empty Buffer, which Readable ignores (no 'data', no byte counted); not accepted it pauses nothing, all `size` bytes being in",
  },
  {
    file: FP,
    mutator: 'ConditionalExpression',
    original: 'chunk.length > room',
    replacement: 'true',
    why: 'subarray(0, room) of a chunk no longer than the room (Infinity when the size is unknown) is the whole chunk: the same bytes',
  },
  {
    file: FP,
    mutator: 'EqualityOperator',
    original: 'chunk.length > room',
    replacement: 'chunk.length >= room',
    why: 'subarray(0, room) of a chunk exactly as long as the room is the whole chunk: the same bytes',
  },
  { file: FP, mutator: 'ConditionalExpression', original: '!this.#sized || this.#received < this.expectedSize', replacement: 'true', why: PAUSE_SIZE_WHY },
  { file: FP, mutator: 'EqualityOperator', original: 'this.#received < this.expectedSize', replacement: 'this.#received <= this.expectedSize', why: PAUSE_SIZE_WHY },
  {
    file: FP,
    mutator: 'ConditionalExpression',
    original: 'this.#data.isPaused()',
    replacement: 'true',
    why: "after an accepted push Readable calls _read on the next tick, whose #waiting() arms the same timers again; after a refused one the pipe is paused anyway; with all bytes in (or none pushed) #waiting() would arm nothing (FinishPipe sent, stall cleared)",
  },
  {
    file: FP,
    mutator: 'ConditionalExpression',
    original: '!this.#finishSent',
    replacement: 'true',
    why: 'the quiet timer armed after FinishPipe only calls #sendFinish(), which does nothing once it was sent (the timer is unref\'d and cleared on the end or destroy)',
  },
  // --- raw-blob-stream.ts
  {
    file: 'src/blobs/raw-blob-stream.ts',
    mutator: 'ConditionalExpression',
    original: '!this.#dataEnded',
    replacement: 'true',
    why: "_read never runs once the data pipe ended: Readable calls it again only after a push, BlobPipe ends only after the _read that resumed it, and the next push is push(null) (checked: no such call in the unit, proxy and versions files)",
  },
  {
    file: 'src/blobs/raw-blob-stream.ts',
    mutator: 'ConditionalExpression',
    original: '!this.#errorsEnded',
    replacement: 'true',
    why: "it refs the error pipe's socket also once that socket ended; an ended socket is closing (no half-open: its 'end' is followed by 'close'), so the ref holds the loop no longer than the close, and on a closed one ref() does nothing",
  },
  // --- stream-kit.ts
  {
    file: 'src/blobs/stream-kit.ts',
    mutator: 'BooleanLiteral',
    original: 'false',
    replacement: 'true',
    why: "nothing writes to the error pipe's socket, and when it ends libuv refuses the shutdown of a read-only pipe with ENOTCONN, which net.Socket's _final takes as done: the same 'end', then 'close'",
  },
];
