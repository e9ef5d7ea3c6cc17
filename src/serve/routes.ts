/**
 * The read side of the distribution spec's API, as routes parsed from the
 * request path. Names, tags and digests are checked against the spec's
 * grammars here; a path that does not match is not a route. The path is
 * taken as sent (percent-escapes are not decoded, so `%2e%2e` is just an
 * invalid name).
 */
import { isDigest, isRepositoryName, isTag } from './repositories.js';

/** A parsed request path. */
export type Route =
  | { kind: 'base' }
  | { kind: 'manifest'; name: string; reference: { tag: string } | { digest: string } }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'tags'; name: string }
  /** Under /v2/ but not a valid request: `why` says what is wrong. */
  | { kind: 'invalid'; status: number; code: 'NAME_INVALID' | 'DIGEST_INVALID' | 'MANIFEST_UNKNOWN' | 'NAME_UNKNOWN'; why: string };

const SHAPE = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/;
const TAGS = /^\/v2\/(.+)\/tags\/list$/;

/** The route of a request URL's path (the query is ignored), or undefined when it is not under /v2/. */
export function parseRoute(url: string): Route | undefined {
  const path = url.split('?')[0]!;
  if (path === '/v2/' || path === '/v2') return { kind: 'base' };
  if (!path.startsWith('/v2/')) return undefined;
  const tags = TAGS.exec(path);
  if (tags) {
    const name = tags[1]!;
    return isRepositoryName(name) ? { kind: 'tags', name } : invalidName();
  }
  const shape = SHAPE.exec(path);
  if (!shape) return { kind: 'invalid', status: 404, code: 'NAME_UNKNOWN', why: 'not a registry API path' };
  const [, name, what, reference] = shape as unknown as [string, string, 'manifests' | 'blobs', string];
  if (!isRepositoryName(name)) return invalidName();
  if (what === 'blobs') {
    return isDigest(reference) ? { kind: 'blob', name, digest: reference } : { kind: 'invalid', status: 400, code: 'DIGEST_INVALID', why: 'not a digest this server accepts (sha256, sha384 or sha512, lower-case hex)' };
  }
  if (isDigest(reference)) return { kind: 'manifest', name, reference: { digest: reference } };
  if (isTag(reference)) return { kind: 'manifest', name, reference: { tag: reference } };
  if (reference.includes(':')) return { kind: 'invalid', status: 400, code: 'DIGEST_INVALID', why: 'not a digest this server accepts (sha256, sha384 or sha512, lower-case hex)' };
  return { kind: 'invalid', status: 404, code: 'MANIFEST_UNKNOWN', why: 'not a valid tag' };
}

function invalidName(): Route {
  return { kind: 'invalid', status: 400, code: 'NAME_INVALID', why: 'not a valid repository name (lower-case letters, digits and . _ - between them, components joined by /)' };
}
