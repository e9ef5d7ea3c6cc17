/**
 * Basic auth for the endpoint itself: one user, compared in constant time.
 * The password comes from the caller (the CLI reads it from a file, never
 * from argv) and is never logged or echoed.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { InvalidArgumentError } from '../errors.js';

/** The one user allowed to pull, with HTTP basic auth. */
export interface BasicCredentials {
  /** The user name (no colon). */
  username: string;
  /** The password. */
  password: string;
}

/** The realm named in the challenge. */
export const REALM = 'containers-image-proxy';

/** Checks requests' Authorization headers against one user. */
export class BasicAuth {
  readonly #expected: Buffer;

  /** @throws {InvalidArgumentError} an empty user or password, or a colon in the user. */
  constructor(credentials: BasicCredentials) {
    const { username, password } = credentials ?? {};
    if (typeof username !== 'string' || username === '' || username.includes(':') || typeof password !== 'string' || password === '') {
      throw new InvalidArgumentError('auth: give a non-empty username without a colon and a non-empty password');
    }
    this.#expected = hash(`${username}:${password}`);
  }

  /** Whether the request carries the user's credentials. */
  allows(req: IncomingMessage): boolean {
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(header) : null;
    if (!match) return false;
    return timingSafeEqual(hash(Buffer.from(match[1]!, 'base64').toString('utf8')), this.#expected);
  }
}

function hash(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Reads credentials from a file's first line, `USER:PASSWORD` (the first
 * colon splits; a trailing newline is dropped).
 */
export function parseCredentials(text: string, source: string): BasicCredentials {
  const line = text.split(/\r?\n/)[0]!; // split always gives at least one element
  const at = line.indexOf(':');
  if (at <= 0 || at === line.length - 1) throw new InvalidArgumentError(`${source}: the first line must be USER:PASSWORD`);
  return { username: line.slice(0, at), password: line.slice(at + 1) };
}
