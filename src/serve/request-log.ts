/** The request log: one line per request, in a documented format. */

/** One request, as logged when its answer ended. */
export interface RequestLogEntry {
  /** When the request arrived. */
  time: Date;
  /** The client's address. */
  remoteAddress: string;
  /** The HTTP method. */
  method: string;
  /** The request path, without the query (which is never logged). */
  path: string;
  /** The status sent (0 when the client left before any). */
  status: number;
  /** Body bytes sent. */
  bytes: number;
  /** Milliseconds from the request to the end of the answer. */
  ms: number;
  /** How a blob answer ended when not whole: `client-gone`, `client-idle`, `failed`. */
  outcome?: string;
}

/**
 * The line of `entry`: `TIME ADDRESS METHOD PATH STATUS BYTES MSms[ OUTCOME]`,
 * e.g. `2026-12-05T03:00:00.000Z 127.0.0.1 GET /v2/app/manifests/1.0 200 1093 4ms`.
 * The path has non-printable and white-space characters percent-escaped, so a
 * line is always one line of five or more space-separated fields.
 */
export function formatRequestLog(entry: RequestLogEntry): string {
  const path = entry.path.replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c));
  const outcome = entry.outcome ? ` ${entry.outcome}` : '';
  return `${entry.time.toISOString()} ${entry.remoteAddress} ${entry.method} ${path} ${entry.status} ${entry.bytes} ${Math.round(entry.ms)}ms${outcome}`;
}
