/**
 * The distribution spec's error bodies, and which one a library error
 * becomes. Messages are the library's, which carry no secrets (credentials
 * never reach a message); nothing of the request is echoed unvalidated.
 */
import type { ServerResponse } from 'node:http';
import { BlobVerificationError, ImageNotFoundError, RequestError } from '../errors.js';
import { isNotFound } from '../skopeo-messages.js';

/** The error codes this server answers with (distribution spec, plus `UNKNOWN` for a server-side failure). */
export type RegistryErrorCode = 'BLOB_UNKNOWN' | 'MANIFEST_UNKNOWN' | 'NAME_UNKNOWN' | 'NAME_INVALID' | 'DIGEST_INVALID' | 'UNSUPPORTED' | 'UNAUTHORIZED' | 'TOOMANYREQUESTS' | 'UNKNOWN';

/** A request the server answers with an error body. */
export class RegistryError extends Error {
  override name = 'RegistryError';
  constructor(
    readonly status: number,
    readonly code: RegistryErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The JSON body of an error answer. */
export function errorBody(code: RegistryErrorCode, message: string): string {
  return JSON.stringify({ errors: [{ code, message, detail: null }] });
}

/** Answers `error` (a RegistryError, or any failure of the proxy, classified); HEAD answers carry no body. */
export function sendError(res: ServerResponse, error: unknown, what: 'manifest' | 'blob', head: boolean): void {
  const { status, code, message } = classify(error, what);
  const body = errorBody(code, message);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

/** The status and code of a failure: the image or blob not at the source is a 404, anything else a 500. */
export function classify(error: unknown, what: 'manifest' | 'blob'): { status: number; code: RegistryErrorCode; message: string } {
  if (error instanceof RegistryError) return { status: error.status, code: error.code, message: error.message };
  const message = error instanceof Error ? error.message.split('\n')[0]! : String(error);
  const notFound = error instanceof ImageNotFoundError || (error instanceof RequestError && isNotFound(error.serverMessage));
  if (notFound) return { status: 404, code: what === 'manifest' ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN', message };
  if (error instanceof BlobVerificationError) return { status: 500, code: 'UNKNOWN', message: `the source's blob failed verification: ${message}` };
  return { status: 500, code: 'UNKNOWN', message };
}
