// Equivalent survivors of the core wire and state files (src/transport.ts,
// src/protocol.ts, src/extract/extract-state.ts, src/extract/ordered-apply.ts;
// format: scripts/mutation/equivalent.mjs). Argued in MUTATION.md, section
// "ninth (branch mutate10): core"; ordered-apply's first in "seventh".
const T = 'src/transport.ts';
const OA = 'src/extract/ordered-apply.ts';
const ENOTCONN_WHY =
  "a send on our end of a socketpair gives ENOTCONN only once the socket left ESTABLISHED, which Linux never does to a SOCK_SEQPACKET socketpair (peer gone: EPIPE, or ECONNRESET once when it left a packet unread; checked on a real socketpair, kernel 6.18)";
const EMSGTRUNC_WHY =
  "the addon learns each packet's length with MSG_PEEK|MSG_TRUNC and receives it into a buffer of that size, and only we read the socket, so MSG_TRUNC never comes (a 100 KB reply arrives whole: test/fake-proxy.test.ts 'huge valid reply'); ECTRUNC, too many fds, is the branch's real case and is tested";
export const EQUIVALENT = [
  // --- transport.ts
  { file: T, mutator: 'ConditionalExpression', original: "code === 'ENOTCONN'", replacement: 'false', why: ENOTCONN_WHY },
  { file: T, mutator: 'EqualityOperator', original: "code === 'ENOTCONN'", replacement: "code !== 'ENOTCONN'", why: ENOTCONN_WHY },
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
];
