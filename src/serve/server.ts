/**
 * {@link createRegistryServer}: a read-only OCI distribution endpoint in
 * front of one ImageProxy. It is a `node:http` (or `node:https`) server
 * because what keeps it safe lives at the connection level: the connection
 * limit, TLS, the client idle timeout and graceful shutdown; its request
 * handler is exposed as well, to mount under another server (which then
 * owns those).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { ImageProxyConfig } from '../config.js';
import { InvalidArgumentError } from '../errors.js';
import { ImageProxy } from '../proxy.js';
import { BasicAuth, REALM, type BasicCredentials } from './auth.js';
import { respondWithBlob } from './blob-responder.js';
import { ImageCache, type ServedImage } from './image-cache.js';
import { RegistryError, sendError } from './registry-errors.js';
import { RepositoryMap, type RepositoryMapping } from './repositories.js';
import { formatRequestLog, type RequestLogEntry } from './request-log.js';
import { parseRoute } from './routes.js';

export { formatRequestLog, type RequestLogEntry } from './request-log.js';
export { parseMapping, type RepositoryMapping } from './repositories.js';
export { parseCredentials, type BasicCredentials } from './auth.js';

/** Options of {@link createRegistryServer}. */
export interface RegistryServerOptions {
  /** A running proxy (left running by {@link RegistryServer.close}), or the config of one to spawn (closed by it). */
  proxy: ImageProxy | ImageProxyConfig;
  /** Which repository serves which source; nothing else is reachable. */
  repositories: readonly RepositoryMapping[];
  /** Require HTTP basic auth with this user. Default: none. */
  auth?: BasicCredentials;
  /** Serve HTTPS with this certificate chain and key (PEM). Default: plain HTTP. */
  tls?: {
    /** The certificate chain, PEM. */
    cert: string | Buffer;
    /** The private key, PEM. */
    key: string | Buffer;
  };
  /** Connections served at once; more are closed at once. Default 64. */
  maxConnections?: number;
  /** Ms a client may take no bytes of a blob before it is cut off. Default 30000. */
  clientIdleTimeout?: number;
  /** Ms an image stays open on the proxy after its last use. Default 30000. */
  idleClose?: number;
  /** Ms a tag stays resolved to the manifest it named before the source is asked again. Default 5000. */
  tagTtl?: number;
  /** Called once per request when its answer ended (see {@link formatRequestLog}). */
  onRequest?: (entry: RequestLogEntry) => void;
}

/** Options of {@link RegistryServer.close}. */
export interface RegistryCloseOptions {
  /** Ms transfers under way may take to finish before their connections are cut. Default 10000. */
  timeoutMs?: number;
}

/** A read-only registry in front of an ImageProxy. Made by {@link createRegistryServer}. */
export class RegistryServer {
  /** The HTTP(S) server; {@link listen} starts it. */
  readonly server: Server;
  /** The proxy the images come from. */
  readonly proxy: ImageProxy;
  /**
   * The request handler, to mount under another `node:http` server (which
   * then owns the connection limit, timeouts, TLS and shutdown).
   */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  readonly #ownsProxy: boolean;
  readonly #cache: ImageCache;
  readonly #repositories: RepositoryMap;
  readonly #auth: BasicAuth | undefined;
  readonly #clientIdleTimeoutMs: number;
  readonly #onRequest: ((entry: RequestLogEntry) => void) | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  #closing: Promise<void> | undefined;

  /** @internal */
  constructor(proxy: ImageProxy, ownsProxy: boolean, options: RegistryServerOptions, checked: Checked) {
    this.proxy = proxy;
    this.#ownsProxy = ownsProxy;
    this.#repositories = checked.repositories;
    this.#auth = checked.auth;
    this.#clientIdleTimeoutMs = checked.clientIdleTimeoutMs;
    this.#onRequest = options.onRequest;
    this.#cache = new ImageCache(proxy, { idleCloseMs: checked.idleCloseMs, tagTtlMs: checked.tagTtlMs });
    this.handler = (req, res) => {
      // #handle answers every failure itself; only a throwing onRequest gets here, once the answer has ended.
      const done = this.#handle(req, res).catch(() => {});
      this.#inFlight.add(done);
      void done.finally(() => this.#inFlight.delete(done));
    };
    this.server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, this.handler) : createHttpServer(this.handler);
    this.server.maxConnections = checked.maxConnections;
    // Headers must arrive promptly; a blob's body has its own client idle timeout.
    this.server.headersTimeout = 30_000;
    this.server.requestTimeout = 0;
    this.server.keepAliveTimeout = 5_000;
  }

  /** Listens on `host` (default 127.0.0.1, loopback only) and `port` (default 5000; 0 picks a free one). */
  listen(port = 5000, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** How many images are open on the proxy now (each is closed after `idleClose` ms unused). */
  get openImages(): number {
    return this.#cache.openImages;
  }

  /**
   * Stops accepting connections, lets the requests under way finish for up
   * to `timeoutMs` and then cuts their connections, closes every image, and
   * closes the proxy if it was spawned for this server. Idempotent.
   */
  close(options: RegistryCloseOptions = {}): Promise<void> {
    this.#closing ??= (async () => {
      this.server.close(); // stops listening at once; the connections are closed below
      this.server.closeIdleConnections();
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, options.timeoutMs ?? 10_000).unref());
      await Promise.race([Promise.allSettled([...this.#inFlight]), timeout]);
      this.server.closeAllConnections();
      await Promise.allSettled([...this.#inFlight]);
      await this.#cache.close();
      if (this.#ownsProxy) await this.proxy.close();
    })();
    return this.#closing;
  }

  /** Same as {@link close} (`await using server = …`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    // node:http sets method and url on every request it hands a handler; a Unix socket has no remote address.
    const entry: RequestLogEntry = { time: new Date(), remoteAddress: req.socket.remoteAddress ?? '', method: req.method!, path: req.url!.split('?')[0]!, status: 0, bytes: 0, ms: 0 };
    const sent = { bytes: 0 };
    const head = req.method === 'HEAD';
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    try {
      await this.#answer(req, res, head, entry, sent);
    } catch (error) {
      if (!res.headersSent) sendError(res, error, 'manifest', head);
      else res.destroy();
    } finally {
      if (!res.writableFinished && !res.destroyed) await new Promise((resolve) => res.once('close', resolve));
      entry.status = res.headersSent ? res.statusCode : 0;
      entry.bytes = sent.bytes || (res.writableFinished && !head ? Number(res.getHeader('Content-Length') ?? 0) : 0);
      entry.ms = performance.now() - started;
      this.#onRequest?.(entry);
    }
  }

  async #answer(req: IncomingMessage, res: ServerResponse, head: boolean, entry: RequestLogEntry, sent: { bytes: number }): Promise<void> {
    const route = parseRoute(req.url!);
    if (this.#auth && !this.#auth.allows(req)) {
      res.setHeader('WWW-Authenticate', `Basic realm="${REALM}"`);
      return sendError(res, new RegistryError(401, 'UNAUTHORIZED', 'authentication required'), 'manifest', head);
    }
    if (req.method !== 'GET' && !head) {
      res.setHeader('Allow', 'GET, HEAD');
      return sendError(res, new RegistryError(405, 'UNSUPPORTED', 'this registry is read-only: only GET and HEAD are served'), 'manifest', head);
    }
    if (!route) return sendError(res, new RegistryError(404, 'NAME_UNKNOWN', 'not a registry API path'), 'manifest', head);
    switch (route.kind) {
      case 'base':
        return sendJson(res, '{}', head);
      case 'invalid':
        return sendError(res, new RegistryError(route.status, route.code, route.why), 'manifest', head);
      case 'manifest': {
        this.#known(route.name);
        const image = await this.#manifest(route.name, route.reference);
        res.writeHead(200, { 'Content-Type': image.manifest.mediaType, 'Content-Length': image.manifest.raw.length, 'Docker-Content-Digest': image.manifest.digest });
        res.end(head ? undefined : image.manifest.raw);
        return;
      }
      case 'tags': {
        this.#known(route.name);
        const tags = await this.#repositories.tags(route.name);
        if (!tags) throw new RegistryError(404, 'UNSUPPORTED', `the source of ${route.name} cannot list its tags`);
        return sendJson(res, JSON.stringify({ name: route.name, tags: paginate(tags, req.url!) }), head);
      }
      case 'blob':
        return this.#blob(res, route.name, route.digest, head, entry, sent);
    }
  }

  /** @throws {RegistryError} NAME_UNKNOWN when no mapping serves `name`. */
  #known(name: string): void {
    if (!this.#repositories.has(name)) throw new RegistryError(404, 'NAME_UNKNOWN', `no repository ${name} is served here`);
  }

  async #manifest(name: string, reference: { tag: string } | { digest: string }): Promise<ServedImage> {
    if ('digest' in reference) {
      const served = this.#cache.manifest(name, reference.digest);
      if (served) return served;
    }
    const proxyReference = this.#repositories.reference(name, reference);
    if (!proxyReference) {
      const what = 'tag' in reference ? `no tag ${reference.tag}` : `no manifest ${reference.digest} served yet (this source opens images by tag: fetch one first)`;
      throw new RegistryError(404, 'MANIFEST_UNKNOWN', `${name}: ${what}`);
    }
    try {
      const image = await this.#cache.resolve(name, proxyReference, (digest) => this.#repositories.reopenReference(name, proxyReference, digest));
      if ('digest' in reference && image.manifest.digest !== reference.digest) {
        throw new RegistryError(404, 'MANIFEST_UNKNOWN', `${name}@${reference.digest} is served converted, as ${image.manifest.digest}`);
      }
      return image;
    } catch (error) {
      if (error instanceof InvalidArgumentError) throw new RegistryError(404, 'MANIFEST_UNKNOWN', error.message);
      throw error;
    }
  }

  async #blob(res: ServerResponse, name: string, digest: string, head: boolean, entry: RequestLogEntry, sent: { bytes: number }): Promise<void> {
    this.#known(name);
    const found = this.#cache.blob(name, digest);
    if (!found) throw new RegistryError(404, 'BLOB_UNKNOWN', `${name}: ${digest} is not a blob of a manifest served here (fetch the manifest first)`);
    const { image, blob } = found;
    if (head || blob.bytes) {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.size, 'Docker-Content-Digest': digest });
      res.end(head ? undefined : blob.bytes);
      return;
    }
    let acquired: Awaited<ReturnType<ServedImage['acquire']>>;
    try {
      acquired = await image.acquire();
    } catch (error) {
      return sendError(res, error, 'blob', false); // e.g. the image changed at the source since its manifest was served
    }
    const { image: opened, release } = acquired;
    try {
      const outcome = await respondWithBlob(res, () => this.proxy.getBlob(opened, digest, blob.size), blob, this.#clientIdleTimeoutMs, sent).catch((error: unknown) => {
        sendError(res, error, 'blob', false);
        return undefined;
      });
      if (outcome && outcome !== 'complete') entry.outcome = outcome;
    } finally {
      release();
    }
  }
}

/**
 * Starts a read-only OCI registry (the distribution spec's pull side) in
 * front of an ImageProxy: each mapping serves a source under a repository
 * name, and nothing else is reachable. Manifests are served as the proxy
 * converts them to OCI, with the config and layers made consistent with the
 * bytes served (as {@link pullImage} writes them), so clients that verify
 * every digest get the same image whatever the source. Call
 * {@link RegistryServer.listen} to start it.
 *
 * @example
 * ```ts
 * import { createRegistryServer } from 'containers-image-proxy';
 * const registry = await createRegistryServer({
 *   proxy: {},
 *   repositories: [{ name: 'app', source: 'oci:/srv/images/app' }, { name: 'local/*', source: 'containers-storage:' }],
 *   onRequest: (entry) => console.error(formatRequestLog(entry)),
 * });
 * const { port } = await registry.listen(5000, '127.0.0.1');
 * // podman pull --tls-verify=false 127.0.0.1:5000/app:1.0
 * process.once('SIGTERM', () => registry.close());
 * ```
 * @throws {InvalidArgumentError} a mapping, the auth or a limit that cannot be used (nothing is spawned).
 * @throws {SpawnError} the proxy could not be started (when given a config).
 */
export async function createRegistryServer(options: RegistryServerOptions): Promise<RegistryServer> {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('createRegistryServer: options are required ({ proxy, repositories })');
  const checked = checkOptions(options);
  if (options.proxy instanceof ImageProxy) return new RegistryServer(options.proxy, false, options, checked);
  const proxy = await ImageProxy.spawn(options.proxy ?? {});
  return new RegistryServer(proxy, true, options, checked);
}

interface Checked {
  repositories: RepositoryMap;
  auth: BasicAuth | undefined;
  maxConnections: number;
  clientIdleTimeoutMs: number;
  idleCloseMs: number;
  tagTtlMs: number;
}

function checkOptions(options: RegistryServerOptions): Checked {
  const positive = (name: string, value: number | undefined, fallback: number, min = 1): number => {
    if (value === undefined) return fallback;
    if (!Number.isSafeInteger(value) || value < min) throw new InvalidArgumentError(`${name} must be a whole number, ${min} or more, got ${String(value)}`);
    return value;
  };
  if (options.tls && (!options.tls.cert || !options.tls.key)) throw new InvalidArgumentError('tls needs both cert and key (PEM)');
  return {
    repositories: new RepositoryMap(options.repositories),
    auth: options.auth === undefined ? undefined : new BasicAuth(options.auth),
    maxConnections: positive('maxConnections', options.maxConnections, 64),
    clientIdleTimeoutMs: positive('clientIdleTimeout', options.clientIdleTimeout, 30_000),
    idleCloseMs: positive('idleClose', options.idleClose, 30_000, 0),
    tagTtlMs: positive('tagTtl', options.tagTtl, 5_000, 0),
  };
}

function sendJson(res: ServerResponse, body: string, head: boolean): void {
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

/** The distribution spec's `n` and `last` on a sorted tag list. */
function paginate(tags: string[], url: string): string[] {
  // Without a '?', the whole path: a valid repository name has no '=' or '&', so it names no parameter.
  const query = new URLSearchParams(url.slice(url.indexOf('?') + 1));
  const last = query.get('last');
  const after = last === null ? tags : tags.filter((tag) => tag > last);
  const n = Number(query.get('n') ?? NaN);
  return Number.isSafeInteger(n) && n >= 0 ? after.slice(0, n) : after;
}
