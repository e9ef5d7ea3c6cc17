// The survivors of Stryker run I of 2026-12-05 on src/blobs/finish-pipe-stream.ts
// (MUTATION.md) that the tests kill, written down as must-fail mutants (names:
// the line in that run's report, the mutator, the replacement; find/replace:
// the same break of the current code). Those of the mutate5 session
// (2026-12-05, MUTATION.md) and those that tests added after run I kill
// (commit 446a417; "124 a full buffer never pauses" and "194" are in
// core-2026-12-05.mjs). One bonus of run H: raw-blob-stream's read error.
// Check them with
//   node scripts/mutation/must-fail.mjs --mutants scripts/mutation/confirmed/finish-pipe-2026-12-05b.mjs
// Some are also in the CI list (must-fail-mutants.mjs); CI does not run this one.
const F = 'src/blobs/finish-pipe-stream.ts';
const PAUSE = 'if (!accepted && (!this.#sized || this.#received < this.expectedSize)) this.#data.pause();';
const PUSH_GUARD = 'if (room > 0 && !this.destroyed) {';
const mutant = (name, find, replace, only, file = F) => ({ name, file, find, replace, test: 'unit/blob-streams', only });
export const MUTANTS = [
  // --- killed by the tests of this session
  mutant('finish-pipe-stream:70 ObjectLiteral {} (the default high-water mark)', 'super({ highWaterMark: HIGH_WATER_MARK });', 'super({});', 'sends FinishPipe once all'),
  mutant("finish-pipe-stream:90 ArrowFunction () => undefined (the data pipe's read error ignored: the stream hangs)", "this.#data.on('error', (error) => this.destroy(error));", "this.#data.on('error', () => undefined);", 'a data pipe whose read fails'),
  mutant('finish-pipe-stream:115 ConditionalExpression true (#sized: a GetBlob reply of -1 delivers nothing)', 'return this.expectedSize !== UNKNOWN_SIZE;', 'return true;', 'a source that cannot tell its size'),
  mutant('finish-pipe-stream:119 ArithmeticOperator size + received (the room left)', 'this.expectedSize - this.#received : Infinity', 'this.expectedSize + this.#received : Infinity', 'the excess in reads of its own'),
  mutant('finish-pipe-stream:122 ConditionalExpression true (push guard)', PUSH_GUARD, 'if (true) {', 'the excess in reads of its own'),
  mutant('finish-pipe-stream:122 LogicalOperator room > 0 || !destroyed', PUSH_GUARD, 'if (room > 0 || !this.destroyed) {', 'the excess in reads of its own'),
  mutant('finish-pipe-stream:122 ConditionalExpression room > 0 -> true', PUSH_GUARD, 'if (true && !this.destroyed) {', 'the excess in reads of its own'),
  mutant('finish-pipe-stream:124 BooleanLiteral this.#sized (size -1 never pauses)', PAUSE, 'if (!accepted && (this.#sized || this.#received < this.expectedSize)) this.#data.pause();', 'reads no further ahead than its consumer either'),
  mutant('finish-pipe-stream:126 EqualityOperator received > size (FinishPipe only after the quiet)', 'if (this.#sized && this.#received >= this.expectedSize) {\n      // All', 'if (this.#sized && this.#received > this.expectedSize) {\n      // All', 'asks for the verdict as soon as'),
  mutant('finish-pipe-stream:126 BlockStatement {} (no FinishPipe at `size`)', 'this.#sendFinish();\n      this.#data.resume();\n    }', '}', 'asks for the verdict as soon as'),
  mutant('finish-pipe-stream:144 ConditionalExpression false (a slow verdict is a stall)', 'if (this.#sized && this.#received >= this.expectedSize) this.#stall.clear();', 'if (false) this.#stall.clear();', 'the verdict slow to come'),
  mutant("finish-pipe-stream:192 ConditionalExpression false (skopeo's size complaint made a plain size mismatch)", 'if (this.#requestedSize === this.expectedSize || !(error instanceof RequestError)) return false;', 'if (false) return false;', 'the excess in reads of its own'),
  // the same two on real skopeo (test/proxy.test.ts: a size 10 bytes short of a 301,568-byte layer)
  { ...mutant('finish-pipe-stream:119 ArithmeticOperator size + received, on skopeo', 'this.expectedSize - this.#received : Infinity', 'this.expectedSize + this.#received : Infinity', 'size smaller or larger'), test: 'proxy' },
  { ...mutant("finish-pipe-stream:192 ConditionalExpression false, on skopeo", 'if (this.#requestedSize === this.expectedSize || !(error instanceof RequestError)) return false;', 'if (false) return false;', 'size smaller or larger'), test: 'proxy' },
  // --- killed by tests added after run I (446a417)
  mutant('finish-pipe-stream:124 BooleanLiteral accepted', PAUSE, 'if (accepted && (!this.#sized || this.#received < this.expectedSize)) this.#data.pause();', 'reads no further ahead than its consumer is'),
  mutant('finish-pipe-stream:124 LogicalOperator !sized && received < size', PAUSE, 'if (!accepted && (!this.#sized && this.#received < this.expectedSize)) this.#data.pause();', 'reads no further ahead than its consumer is'),
  mutant('finish-pipe-stream:124 ConditionalExpression received < size -> false', PAUSE, 'if (!accepted && (!this.#sized || false)) this.#data.pause();', 'reads no further ahead than its consumer is'),
  mutant('finish-pipe-stream:124 EqualityOperator received >= size', PAUSE, 'if (!accepted && (!this.#sized || this.#received >= this.expectedSize)) this.#data.pause();', 'reads no further ahead than its consumer is'),
  mutant('finish-pipe-stream:132 ConditionalExpression false (timers armed while the consumer is behind)', 'if (this.#data.isPaused()) this.#idle();', 'if (false) this.#idle();', 'reads no further ahead than its consumer is'),
  // --- run H, kept then ("no way to make a FIFO fail a read"): a directory's fd does
  mutant("raw-blob-stream:79 ArrowFunction () => undefined (the data pipe's read error ignored: the stream hangs)", "this.#data.on('error', (error) => this.destroy(error));", "this.#data.on('error', () => undefined);", 'a data pipe whose read fails', 'src/blobs/raw-blob-stream.ts'),
];
