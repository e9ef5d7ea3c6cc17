/**
 * Which repository serves which source. A mapping `NAME=SOURCE` serves one
 * source under one repository name; `PREFIX/*=SOURCE` serves every name
 * below PREFIX, the rest of the name appended to SOURCE. Every reference
 * handed to the proxy is built here, only from names, tags and digests that
 * match the distribution spec's grammars: request text never reaches the
 * proxy otherwise (no `..`, no `:`, no `@`, no transport switch).
 */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '../errors.js';
import { REF_NAME_ANNOTATION } from '../oci-layout.js';

/** One repository mapping of {@link RegistryServerOptions.repositories}. */
export interface RepositoryMapping {
  /** The repository name clients pull, e.g. `app`; `PREFIX/*` serves every name below PREFIX. */
  name: string;
  /**
   * The source, a containers/image reference without tag: `oci:/srv/app`,
   * `oci-archive:/srv/app.tar`, `docker://registry.example/ns/app`,
   * `containers-storage:`, or one image: `docker-archive:/srv/app.tar`, `dir:/srv/app`
   * (served as the tag `latest`).
   */
  source: string;
}

/** What one pull names: the proxy reference to open, and whether it is by digest. */
export interface ResolvedReference {
  /** The reference handed to the proxy. */
  reference: string;
  /** The repository name as asked. */
  repository: string;
}

/** The distribution spec's repository name grammar (path components of lower-case alphanumerics and separators). */
const NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
/** The distribution spec's tag grammar. */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
/** Digests this server accepts: the algorithms the library verifies, in lower-case hex of the right length. */
const DIGEST = /^(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;
const MAX_NAME_LENGTH = 255;

/** Whether `name` is a valid repository name. */
export function isRepositoryName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME.test(name);
}

/** Whether `reference` is a valid tag. */
export function isTag(reference: string): boolean {
  return TAG.test(reference);
}

/** Whether `reference` is a digest this server accepts. */
export function isDigest(reference: string): boolean {
  return DIGEST.test(reference);
}

type Kind = 'tagged' | 'docker' | 'store' | 'single';

interface Mapping {
  name: string;
  wildcard: boolean;
  source: string;
  transport: string;
  kind: Kind;
}

/**
 * The transports served, and how each names its images (by tag inside the
 * source; docker also by digest; one image). A Map, not an object literal:
 * `constructor:` or `__proto__:` must not find an inherited property.
 */
const TRANSPORTS = new Map<string, Kind>([
  ['oci', 'tagged'],
  ['oci-archive', 'tagged'],
  ['docker', 'docker'],
  ['containers-storage', 'store'],
  ['docker-archive', 'single'],
  ['dir', 'single'],
]);

/** The tag a source that holds one image is served as. */
export const SINGLE_IMAGE_TAG = 'latest';

/** The repository mappings, checked once. */
export class RepositoryMap {
  readonly #mappings: Mapping[];

  /** @throws {InvalidArgumentError} a name or source that cannot be served, naming it. */
  constructor(mappings: readonly RepositoryMapping[]) {
    if (!Array.isArray(mappings) || mappings.length === 0) {
      throw new InvalidArgumentError('repositories: give at least one mapping, e.g. { name: "app", source: "oci:/srv/images/app" }');
    }
    this.#mappings = mappings.map(checkMapping);
    const names = new Set<string>();
    for (const mapping of this.#mappings) {
      const key = `${mapping.name}${mapping.wildcard ? '/*' : ''}`;
      if (names.has(key)) throw new InvalidArgumentError(`repositories: ${key} is mapped twice`);
      names.add(key);
    }
  }

  /** The mapping that serves `repository` (an exact name before a wildcard, the longest prefix first), or undefined. */
  #find(repository: string): { mapping: Mapping; rest: string } | undefined {
    const exact = this.#mappings.find((m) => !m.wildcard && m.name === repository);
    if (exact) return { mapping: exact, rest: '' };
    const matches = this.#mappings.filter((m) => m.wildcard && repository.startsWith(`${m.name}/`));
    const longest = matches.sort((a, b) => b.name.length - a.name.length)[0];
    return longest && { mapping: longest, rest: repository.slice(longest.name.length + 1) };
  }

  /** Whether `repository` is served at all (the name must be valid). */
  has(repository: string): boolean {
    return isRepositoryName(repository) && this.#find(repository) !== undefined;
  }

  /**
   * The proxy reference for `repository` at `tag` (or, where the source can
   * open one by digest, `digest`); undefined when the mapping cannot name it
   * so (a tag other than `latest` on a single-image source, a digest on a
   * layout): the caller then looks in what it has already served.
   */
  reference(repository: string, ref: { tag: string } | { digest: string }): string | undefined {
    if (!isRepositoryName(repository)) return undefined;
    const found = this.#find(repository);
    if (!found) return undefined;
    const { mapping, rest } = found;
    const base = mapping.source + rest;
    if ('digest' in ref) {
      if (!isDigest(ref.digest)) return undefined;
      return mapping.kind === 'docker' ? `${base}@${ref.digest}` : undefined;
    }
    if (!isTag(ref.tag)) return undefined;
    if (mapping.kind === 'single') return ref.tag === SINGLE_IMAGE_TAG ? base : undefined;
    return `${base}:${ref.tag}`;
  }

  /**
   * The reference that opens the image `reference` opened, once its
   * manifest digest is known: by digest for a registry (a tag may move),
   * else the same reference (checked against the digest when re-opened).
   */
  reopenReference(repository: string, reference: string, sourceDigest: string): string {
    return this.reference(repository, { digest: sourceDigest }) ?? reference;
  }

  /**
   * The tags of `repository` where the source can list them without the
   * proxy (an `oci:` layout's index.json; `latest` for a single image), or
   * undefined where it cannot (registries, stores, archives).
   */
  async tags(repository: string): Promise<string[] | undefined> {
    const found = isRepositoryName(repository) ? this.#find(repository) : undefined;
    if (!found) return undefined;
    const { mapping, rest } = found;
    if (mapping.kind === 'single') return [SINGLE_IMAGE_TAG];
    if (mapping.transport !== 'oci') return undefined;
    const layout = mapping.source.slice('oci:'.length) + rest;
    let index: { manifests?: Array<{ annotations?: Record<string, string> }> };
    try {
      index = JSON.parse(await readFile(`${layout}/index.json`, 'utf8')) as typeof index;
    } catch {
      return [];
    }
    const tags = (index.manifests ?? []).map((m) => m.annotations?.[REF_NAME_ANNOTATION]).filter((t): t is string => typeof t === 'string' && isTag(t));
    return [...new Set(tags)].sort();
  }
}

function checkMapping(mapping: RepositoryMapping): Mapping {
  if (typeof mapping !== 'object' || mapping === null || typeof mapping.name !== 'string' || typeof mapping.source !== 'string') {
    throw new InvalidArgumentError('repositories: each mapping is { name, source }, both strings');
  }
  const wildcard = mapping.name.endsWith('/*');
  const name = wildcard ? mapping.name.slice(0, -2) : mapping.name;
  if (!isRepositoryName(name)) {
    throw new InvalidArgumentError(
      `repositories: ${JSON.stringify(mapping.name)} is not a repository name: lower-case letters, digits and . _ - between them, components joined by /, optionally ending in /*`,
    );
  }
  const source = mapping.source;
  const colon = source.indexOf(':');
  const transport = source.slice(0, Math.max(colon, 0)); // '' without a colon
  const kind = TRANSPORTS.get(transport);
  if (!kind) {
    throw new InvalidArgumentError(`repositories: ${name}: ${JSON.stringify(source)} is not a source this server can serve; use one of ${[...TRANSPORTS.keys()].map((t) => `${t}:`).join(', ')}`);
  }
  if (source.includes('\0') || /[\s]/.test(source)) throw new InvalidArgumentError(`repositories: ${name}: the source ${JSON.stringify(source)} contains a NUL byte or white space`);
  const path = source.slice(colon + 1);
  if (kind === 'tagged' && path.includes(':')) {
    throw new InvalidArgumentError(`repositories: ${name}: ${JSON.stringify(source)} already names a tag (or its path has a colon); map the layout itself, tags resolve inside it`);
  }
  // A tag or digest can only be in the last component; a port only in a host, which a / always follows
  // (docker://localhost:5000 is docker.io/library/localhost, tag 5000).
  if (kind === 'docker' && !wildcard && /[:@]/.test(path.split('/').at(-1)!)) {
    throw new InvalidArgumentError(`repositories: ${name}: ${JSON.stringify(source)} already names a tag or digest; map the repository, tags resolve inside it`);
  }
  if (wildcard && kind === 'single') throw new InvalidArgumentError(`repositories: ${mapping.name}: a ${transport}: source holds one image and cannot serve a wildcard`);
  // The rest of a name is appended to a wildcard's source: it must end a path component, or
  // `docker://registry.test` + `x.other.test/app` would name another host. A store may also be bare or end its [driver@root].
  const appendable = path.endsWith('/') || (kind === 'store' && (path === '' || path.endsWith(']')));
  if (wildcard && !appendable) {
    throw new InvalidArgumentError(`repositories: ${mapping.name}: the rest of a name is appended to a wildcard's ${transport}: source; end it with /`);
  }
  return { name, wildcard, source, transport, kind };
}

/**
 * Parses a command-line mapping `NAME=SOURCE` (the first `=` splits).
 * @throws {InvalidArgumentError} no `=`.
 */
export function parseMapping(text: string): RepositoryMapping {
  const at = text.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError(`--map takes NAME=SOURCE, e.g. app=oci:/srv/images/app; got ${JSON.stringify(text)}`);
  return { name: text.slice(0, at), source: text.slice(at + 1) };
}
