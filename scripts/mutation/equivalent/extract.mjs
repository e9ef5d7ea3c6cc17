// Equivalent survivors in src/extract/ (format: scripts/mutation/equivalent.mjs).
// Argued first in MUTATION.md (sections "tar-reader survivors worked on (branch
// mutate4)" and "later (branch mutate2)"), each re-checked against the code of
// branch mutate11 (MUTATION.md, "ninth").
const TR = 'src/extract/tar-reader.ts';
const RW = 'src/extract/rootfs-writer.ts';
const PUSH_LOOP = "input.length > 0 && this.#state.kind !== 'end'";
const PUSH_LOOP_WHY = "push()'s loop: every state given an empty input consumes 0 bytes and returns, and the end state swallows whatever follows";
const MARK = "path !== '' && !this.#written.has(path)";
const MARK_WHY = "#markWritten may add '' too: #written is only asked about a child of a directory, never about the root ''";
export const EQUIVALENT = [
  // --- tar-reader.ts
  { file: TR, mutator: 'LogicalOperator', original: PUSH_LOOP, replacement: "input.length > 0 || this.#state.kind !== 'end'", why: PUSH_LOOP_WHY },
  { file: TR, mutator: 'ConditionalExpression', original: 'input.length > 0', replacement: 'true', why: PUSH_LOOP_WHY },
  { file: TR, mutator: 'EqualityOperator', original: 'input.length > 0', replacement: 'input.length >= 0', why: PUSH_LOOP_WHY },
  { file: TR, mutator: 'ConditionalExpression', original: "this.#state.kind !== 'end'", replacement: 'true', why: PUSH_LOOP_WHY },
  { file: TR, mutator: 'EqualityOperator', original: 'at < data.length', replacement: 'at <= data.length', why: 'parsePax at the end of the data: no space, so no digits, the length is NaN and the (empty) rest counts as NUL padding: the same return' },
  { file: TR, mutator: 'EqualityOperator', original: 'space > at', replacement: 'space >= at', why: 'a space right at the record start gives the digits of an empty range, "" either way, which decimal() refuses' },
  { file: TR, mutator: 'EqualityOperator', original: 'length <= space - at', replacement: 'length < space - at', why: 'a length equal to its own digits makes the record end on its last digit, not a newline: refused by the newline check' },
  { file: TR, mutator: 'ConditionalExpression', original: 'at + length > data.length', replacement: 'false', why: 'a record running past the data ends on a byte that is undefined, not a newline: refused by the newline check' },
  { file: TR, mutator: 'ArithmeticOperator', original: 'at + length', replacement: 'at - length', why: 'at - length is never past the data (length > 0), so this is the check forced false: refused by the newline check' },
  { file: TR, mutator: 'EqualityOperator', original: 'end > start + length', replacement: 'end >= start + length', why: 'cString: a NUL just past a full field cuts the string at start + length either way' },
  { file: TR, mutator: 'ConditionalExpression', original: 'space > at', replacement: 'true', why: "with no space (-1) or a space at the record start, toString(at, space) is an empty range: '' as the code gives" },
  { file: TR, mutator: 'StringLiteral', original: "''", replacement: '"Stryker was here!"', why: 'parsePax: digits that are not digits, refused by decimal() as the empty string is' },
  // --- rootfs-writer.ts
  { file: RW, mutator: 'StringLiteral', original: "'/'", replacement: '""', why: "finish()'s order sorted by name length instead of depth: a directory's name is always longer than its ancestors', so each still comes before every ancestor" },
  { file: RW, mutator: 'StringLiteral', original: "''", replacement: '"Stryker was here!"', why: "the '' of finish()'s rel !== '' (as true), of an open error's code ?? '' (fs errors carry a code), of the hardlink's sourceDir === '' (as false) and of #markWritten (a stop name no path has); the same text in depth() and entryError is killed (MUTATION.md, ninth)" },
  { file: RW, mutator: 'ConditionalExpression', original: 'header.sparse', replacement: 'true', why: 'a dense file is truncated to the size its data has just given it' },
  { file: RW, mutator: 'ConditionalExpression', original: "sourceDir === ''", replacement: 'false', why: "a hardlink source in the root becomes '/name', and host() gives root//name, the same file" },
  { file: RW, mutator: 'ConditionalExpression', original: 'stat.isDirectory() || stat.isSymbolicLink()', replacement: 'true', why: 'invalidating the resolution cache after removing a file too: resolved again from the disk, slower, the same result' },
  { file: RW, mutator: 'LogicalOperator', original: MARK, replacement: "path !== '' || !this.#written.has(path)", why: `${MARK_WHY}; the walk up still stops at '' (now in the set)` },
  { file: RW, mutator: 'ConditionalExpression', original: "path !== ''", replacement: 'true', why: MARK_WHY },
  { file: RW, mutator: 'ConditionalExpression', original: "code !== 'EOPNOTSUPP'", replacement: 'true', why: "libuv (Node's fs and the addon's uv_err_name) names errno 95 'ENOTSUP' on Linux, where EOPNOTSUPP is the same number: no error is ever coded 'EOPNOTSUPP'" },
  { file: RW, mutator: 'StringLiteral', original: "'EOPNOTSUPP'", replacement: '""', why: "libuv names errno 95 'ENOTSUP' on Linux (EOPNOTSUPP is the same number), and no error has the code '' either" },
];
