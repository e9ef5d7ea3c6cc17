// Equivalent survivors in src/serve/ (format: scripts/mutation/equivalent.mjs).
export const EQUIVALENT = [
  {
    file: 'src/serve/routes.ts',
    mutator: 'Regex',
    original: '/^\\/v2\\/(.+)\\/(manifests|blobs)\\/([^/]+)$/',
    replacement: '/\\/v2\\/(.+)\\/(manifests|blobs)\\/([^/]+)$/',
    why: "run only on paths that start with /v2/, where any match has one at 0 (.+ takes what lies before) unless that holds a line terminator, which node:http refuses in a request target",
  },
  {
    file: 'src/serve/routes.ts',
    mutator: 'Regex',
    original: '/^\\/v2\\/(.+)\\/tags\\/list$/',
    replacement: '/\\/v2\\/(.+)\\/tags\\/list$/',
    why: "run only on paths that start with /v2/, where any match has one at 0 (.+ takes what lies before) unless that holds a line terminator, which node:http refuses in a request target",
  },
  {
    file: 'src/serve/server.ts',
    mutator: 'ConditionalExpression',
    original: '!res.headersSent',
    replacement: 'true',
    why: "#answer throws only before the status is out (respondWithBlob reports a failure after it as its outcome, #blob answers a failed re-open itself), so headersSent is always false in #handle's catch",
  },
  {
    file: 'src/serve/image-cache.ts',
    mutator: 'ConditionalExpression',
    original: 'head.length < 4',
    replacement: 'true',
    why: 'with 4 bytes held, chunk.subarray(0, 4 - 4) is empty: the head stays as it was',
  },
  {
    file: 'src/serve/image-cache.ts',
    mutator: 'EqualityOperator',
    original: 'head.length < 4',
    replacement: 'head.length <= 4',
    why: 'with 4 bytes held, chunk.subarray(0, 4 - 4) is empty: the head stays as it was',
  },
  {
    file: 'src/serve/image-cache.ts',
    mutator: 'ArithmeticOperator',
    original: '4 - head.length',
    replacement: '4 + head.length',
    why: 'only a longer head: detectCompression compares its first 4 bytes at most, so the answer is the same',
  },
  {
    file: 'src/serve/blob-responder.ts',
    mutator: 'StringLiteral',
    original: "'drain'",
    replacement: '""',
    why: "(the off() in drained) a wait ended by 'drain' has lost its once-listener already; one ended by close or timeout is followed by abandon(), and a destroyed response never emits 'drain'",
  },
  {
    file: 'src/serve/blob-responder.ts',
    mutator: 'BooleanLiteral',
    original: 'false',
    replacement: 'true',
    why: "(a close during the wait for drain taken as drained) the loop's next untilClientGone sees res.destroyed and abandons with the same 'client-gone'; the one more chunk it asks for is of a stream destroyed in the same tick",
  },
];
