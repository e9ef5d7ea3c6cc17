/**
 * The wire format of `skopeo experimental-image-proxy`: one JSON request per
 * packet, one JSON reply per packet (with fds as ancillary data), and the
 * protocol version each method appeared in.
 */
import { InvalidArgumentError, ProtocolError } from './errors.js';

/** The oldest protocol this library speaks (skopeo 1.9, Debian 12). */
export const MINIMUM_PROTOCOL_VERSION = '0.2.3';

/** The protocol version that introduced each capability we use. */
export const FEATURE_VERSIONS = {
  /** The whole image configuration (`fetchConfig`). */
  GetFullConfig: '0.2.3',
  /** Opening an image that may not exist (`openImageOptional`). */
  OpenImageOptional: '0.2.4',
  /** The blobs the proxy serves, inline (`getLayerInfo`). */
  GetLayerInfo: '0.2.5',
  /** Signature policy is enforced by OpenImage from this version on. */
  PolicyEnforcement: '0.2.6',
  /** The blobs the proxy serves, through a pipe (no 32 KiB limit). */
  GetLayerInfoPiped: '0.2.7',
  /** Blobs with no server-side verification and no FinishPipe: many at once (`getRawBlob`). */
  GetRawBlob: '0.2.8',
} as const;

/** A protocol feature: a key of {@link FEATURE_VERSIONS}. */
export type Feature = keyof typeof FEATURE_VERSIONS;

/**
 * A blob size that is not known (GetBlob replies and containers/image use -1
 * too): `getBlob(image, digest, UNKNOWN_SIZE)` learns it from the proxy.
 */
export const UNKNOWN_SIZE = -1;

/** The server reads requests into a 32 KiB buffer. */
export const MAX_REQUEST_BYTES = 32 * 1024;

export type RequestArg = string | number | boolean | null;

/** A decoded reply; fds are owned by whoever receives it. */
export interface Reply {
  value: unknown;
  pipeId: number;
  fds: number[];
}

/** A decoded failure reply. */
export interface FailureReply {
  error: string;
  code: string | undefined;
}

/** Compares dotted versions numerically: negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function isVersion(text: unknown): text is string {
  return typeof text === 'string' && /^\d+\.\d+\.\d+$/.test(text);
}

export function encodeRequest(method: string, args: readonly RequestArg[]): Buffer {
  for (const arg of args) {
    if (typeof arg === 'number' && (!Number.isSafeInteger(arg) || arg < 0)) {
      throw new InvalidArgumentError(
        `${method}: ${arg} is not an integer between 0 and 2^53-1, the only numbers the proxy accepts`,
      );
    }
  }
  const packet = Buffer.from(JSON.stringify({ method, args }));
  if (packet.length > MAX_REQUEST_BYTES) {
    throw new InvalidArgumentError(
      `${method}: the request is ${packet.length} bytes, over the proxy's limit of ${MAX_REQUEST_BYTES}; ` +
        'shorten the image reference or digest',
    );
  }
  return packet;
}

/**
 * Parses one reply packet. Returns the success value or the failure; throws
 * {@link ProtocolError} for anything that is not a well-formed reply.
 */
export function decodeReply(packet: Buffer): { ok: true; value: unknown; pipeId: number } | ({ ok: false } & FailureReply) {
  let parsed: unknown;
  try {
    parsed = JSON.parse(packet.toString('utf8'));
  } catch {
    throw new ProtocolError(`the proxy sent a reply that is not JSON: ${preview(packet)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ProtocolError(`the proxy sent a reply that is not a JSON object: ${preview(packet)}`);
  }
  const reply = parsed as Record<string, unknown>;
  if (typeof reply.success !== 'boolean') {
    throw new ProtocolError(`the proxy sent a reply without a boolean "success": ${preview(packet)}`);
  }
  const pipeId = reply.pipeid ?? 0;
  if (typeof pipeId !== 'number' || !Number.isInteger(pipeId) || pipeId < 0 || pipeId > 0xffffffff) {
    throw new ProtocolError(`the proxy sent a reply with an invalid "pipeid": ${preview(packet)}`);
  }
  if (!reply.success) {
    const error = typeof reply.error === 'string' && reply.error !== '' ? reply.error : 'unknown error';
    const code = typeof reply.error_code === 'string' && reply.error_code !== '' ? reply.error_code : undefined;
    return { ok: false, error, code };
  }
  return { ok: true, value: reply.value, pipeId };
}

function preview(packet: Buffer): string {
  const text = packet.subarray(0, 200).toString('utf8');
  return JSON.stringify(packet.length > 200 ? text + '…' : text);
}

// Typed accessors for reply values: a wrong type is the proxy's fault.

export function expectString(method: string, value: unknown): string {
  if (typeof value !== 'string') throw wrongType(method, 'a string', value);
  return value;
}

export function expectUint(method: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw wrongType(method, 'a non-negative integer', value);
  }
  return value;
}

/** Blob sizes: -1 means "unknown" in GetBlob replies. */
export function expectSize(method: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < -1) {
    throw wrongType(method, 'a blob size', value);
  }
  return value;
}

function wrongType(method: string, expected: string, value: unknown): ProtocolError {
  return new ProtocolError(`${method}: expected ${expected} in the reply, got ${JSON.stringify(value)?.slice(0, 100)}`);
}
