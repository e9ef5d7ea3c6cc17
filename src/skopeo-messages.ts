/**
 * What skopeo's error messages mean. The proxy sends prose, and an error code
 * only from protocol 0.2.8 on, so this is the one place that reads that prose.
 * The patterns come from real messages of skopeo 1.9.3, 1.18 and 1.22
 * (test/fixtures/skopeo-messages.json, captured by test/messages.test.ts).
 */

/** What a failure is, as far as a caller can act on it. */
export type FailureKind =
  /** The image, tag, repository, layout, archive or blob is not there. */
  | 'not-found'
  /** Credentials missing, wrong, or not allowed. */
  | 'auth'
  /** Signature policy refused the image. */
  | 'policy'
  /** TLS could not be established (certificate, or a plain-HTTP registry). */
  | 'tls'
  /** The bytes do not match their digest or size. */
  | 'verification'
  /** A network fault or a 5xx/429 answer: repeating may succeed. */
  | 'transient'
  | 'other';

const KINDS: readonly (readonly [Exclude<FailureKind, 'other'>, RegExp])[] = [
  ['verification', /corrupted blob|did not match|expected \d+ bytes in blob|size mismatch|too many bytes/i],
  [
    'not-found',
    new RegExp(
      [
        /manifest unknown/, // docker://, tag or digest missing
        /name unknown/, // docker://, repository missing
        /blob unknown/, // docker://, blob missing
        /no descriptor found for reference/, // oci: tag missing
        /index\.json: no such file or directory/, // oci: layout missing
        /manifest\.json: no such file or directory/, // dir:
        /creating temp directory: (?:open [^:]+: no such file or directory|archive file not found)/, // oci-archive:
        /^opening file "[^"]*": open [^:]+: no such file or directory$/, // docker-archive:
        /does not resolve to an image ID/, // containers-storage: not in this store (or another driver's)
        /locating item named/, // containers-storage: a blob the store does not keep
      ]
        .map((pattern) => pattern.source)
        .join('|'),
      'i',
    ),
  ],
  // Narrow on purpose: messages quote paths and references, which may contain any word.
  ['policy', /is rejected by policy|Source image rejected|A signature was required|Invalid GPG signature|signature verification failed|Signature for identity/i],
  ['auth', /unauthorized|authentication required|access denied|requested access to the resource is denied|invalid username\/password/i],
  ['tls', /x509: |tls: |server gave HTTP response to HTTPS client/i],
  [
    'transient',
    /connection reset|broken pipe|unexpected EOF|i\/o timeout|TLS handshake timeout|server closed|connection refused|EOF$|\b(?:500|502|503|504|429)\b|Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout|Too Many Requests/i,
  ],
];

/** Words that make a failure permanent even when it also reads like a network fault. */
const NEVER_TRANSIENT = /denied|\bnot found\b|signature|no such file/i;

/** Classifies one of skopeo's error messages. */
export function classifyMessage(message: string): FailureKind {
  for (const [kind, pattern] of KINDS) {
    if (pattern.test(message)) return kind === 'transient' && NEVER_TRANSIENT.test(message) ? 'other' : kind;
  }
  return 'other';
}

/** Whether a proxy error message says the image (or blob) does not exist. */
export function isNotFound(message: string): boolean {
  return classifyMessage(message) === 'not-found';
}

/** A `containers-storage:` store asked for a blob it does not keep (a compressed digest from the manifest, usually). */
export function isMissingStoreBlob(message: string): boolean {
  return /locating item named/i.test(message);
}

/**
 * GetBlob's size check, `expected N bytes in blob, got M`: the numbers, or
 * undefined for any other message.
 */
export function parseSizeComplaint(message: string): { expected: number; got: number } | undefined {
  const match = /^expected (\d+) bytes in blob, got (\d+)$/i.exec(message.trim());
  return match ? { expected: Number(match[1]), got: Number(match[2]) } : undefined;
}
