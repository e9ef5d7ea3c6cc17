/**
 * ImageProxy: one skopeo `experimental-image-proxy` child and the methods of
 * its protocol, each a few lines on top of the transport.
 */
import { needsFeatureProbe, planSpawn, type ImageProxyConfig } from './config.js';
import {
  BlobVerificationError,
  ImageClosedError,

  InvalidArgumentError,
  ProtocolError,
  ProxyClosedError,
  ProxyExitedError,
  ProxyTooOldError,
  RequestError,
  SpawnError,
  UnsupportedOperationError,
} from './errors.js';
import type { ConvertedLayerInfo, Descriptor, ImageConfig, ImageManifest } from './oci.js';
import {
  compareVersions,
  expectSize,
  expectString,
  expectUint,
  FEATURE_VERSIONS,
  isVersion,
  MINIMUM_PROTOCOL_VERSION,
  type Feature,
  type RequestArg,
} from './protocol.js';
import { findSetpriv, probeFeatures, spawnChild, type SpawnedChild } from './spawn.js';
import { FinishPipeBlobStream, hashAlgorithm, RawBlobStream, readPipe, type BlobStream, type BlobTransfer } from './streams.js';
import { closeFds, Transport, type ReplyShape } from './transport.js';

/** Options every potentially slow call accepts. */
export interface CallOptions {
  /** Aborts the call (and, for blob streams, destroys the stream). */
  signal?: AbortSignal;
}

/** Options of {@link ImageProxy.getBlob}. */
export interface BlobOptions extends CallOptions {
  /**
   * Force a transfer method. Default: `GetRawBlob` where the proxy has it
   * (0.2.8: concurrent streams never block other requests, verified here),
   * else `GetBlob` (verified by the proxy).
   */
  transfer?: BlobTransfer;
}

/** A layer and the digest of its uncompressed contents. */
export interface LayerWithDiffId extends ConvertedLayerInfo {
  diffId: string;
}

/** Options of {@link ImageProxy.close}. */
export interface CloseOptions {
  /** How long to wait for skopeo to exit after Shutdown before SIGTERM, then SIGKILL. Default 5000. */
  timeoutMs?: number;
}

/** An image opened on a proxy. Close it (or `await using` it) when done. */
export class OpenedImage {
  #closed = false;
  /** @internal */
  constructor(
    readonly proxy: ImageProxy,
    /** The proxy's id for this image. */
    readonly id: number,
    /** The reference it was opened with, e.g. `docker://quay.io/fedora/fedora:42`. */
    readonly reference: string,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  markClosed(): void {
    this.#closed = true;
  }

  /** Same as `proxy.closeImage(this)`. */
  close(options?: CallOptions): Promise<void> {
    return this.proxy.closeImage(this, options);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#closed && this.proxy.running) await this.close();
  }
}

/**
 * A running `skopeo experimental-image-proxy`. Create one with
 * {@link ImageProxy.spawn}; close it with {@link ImageProxy.close} or
 * `await using`.
 *
 * Calls may be made concurrently; the proxy serves them one at a time in
 * order. Blob streams may be read concurrently and in any order.
 */
export class ImageProxy {
  /** The protocol version the proxy reported, e.g. `0.2.8`. */
  readonly protocolVersion: string;
  readonly #child: SpawnedChild;
  readonly #transport: Transport;
  #closing: Promise<void> | undefined;
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(child: SpawnedChild, transport: Transport, protocolVersion: string) {
    this.#child = child;
    this.#transport = transport;
    this.protocolVersion = protocolVersion;
  }

  /**
   * Starts skopeo and performs the protocol handshake.
   * @throws {ConfigurationError} contradictory or unsupported config (nothing is spawned).
   * @throws {SpawnError} skopeo is missing or died at start (its stderr is quoted).
   * @throws {ProxyTooOldError} skopeo speaks a protocol older than 0.2.3.
   */
  static async spawn(config: ImageProxyConfig = {}): Promise<ImageProxy> {
    const prefix = config.skopeoCommand ?? ['skopeo'];
    const features = needsFeatureProbe(config) ? await probeFeatures(prefix) : undefined;
    const plan = planSpawn(config, { env: process.env, setpriv: findSetpriv(), features });
    const child = spawnChild(plan.argv, plan.secretFiles, plan.debug);

    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let proxy: ImageProxy | undefined;
    const exitedError = (): ProxyExitedError => new ProxyExitedError(exit?.code ?? null, exit?.signal ?? null, child.stderr());
    // The socket can report EOF before the exit status is known: give the
    // exit a moment so the error can say how skopeo died.
    const onDisconnect = (): void => {
      const timer = setTimeout(() => transport.fail(exitedError()), 2000);
      void child.exited.then(() => {
        clearTimeout(timer);
        transport.fail(exitedError());
      });
    };
    const transport = new Transport(child.socketFd, onDisconnect);
    void child.exited.then((status) => {
      exit = status;
      if (proxy) proxy.#exit = status;
      transport.fail(proxy !== undefined && proxy.#closing !== undefined ? new ProxyClosedError() : exitedError());
    });

    let version: string;
    try {
      const reply = await transport.request('Initialize', []);
      version = expectString('Initialize', reply.value);
      if (!isVersion(version)) throw new ProtocolError(`Initialize: ${JSON.stringify(version)} is not a version`);
      if (compareVersions(version, MINIMUM_PROTOCOL_VERSION) < 0) throw new ProxyTooOldError(MINIMUM_PROTOCOL_VERSION, version);
    } catch (error) {
      transport.fail(new ProxyClosedError());
      child.child.ref();
      child.child.kill('SIGKILL');
      await child.exited;
      if (error instanceof ProxyExitedError) {
        throw new SpawnError(`${plan.argv.join(' ')} did not start: ${exitedError().message.replace(/^skopeo image proxy /, '')}`, plan.argv, {
          cause: error,
        });
      }
      throw error;
    }
    proxy = new ImageProxy(child, transport, version);
    proxy.#exit = exit;
    return proxy;
  }

  /** The skopeo process id (for diagnostics). */
  get pid(): number | undefined {
    return this.#child.child.pid;
  }

  /** The last 64 KiB of skopeo's stderr. */
  get stderr(): string {
    return this.#child.stderr();
  }

  /** Whether the proxy still accepts calls (not closed, not exited). */
  get running(): boolean {
    return this.#closing === undefined && this.#transport.open;
  }

  /** Whether the running proxy is new enough for a protocol feature. */
  supports(feature: Feature): boolean {
    return compareVersions(this.protocolVersion, FEATURE_VERSIONS[feature]) >= 0;
  }

  /**
   * Opens an image by any containers/image reference (`docker://…`, `oci:…`,
   * `oci-archive:…`, `dir:…`, `docker-archive:…`, `containers-storage:…`).
   * @throws {RequestError} not found, unauthorized, policy rejection, malformed reference.
   */
  async openImage(reference: string, options: CallOptions = {}): Promise<OpenedImage> {
    checkReference(reference);
    const reply = await this.#request('OpenImage', [reference], 'plain', options.signal);
    return new OpenedImage(this, expectUint('OpenImage', reply.value), reference);
  }

  /**
   * Like {@link openImage}, but resolves to `null` when the image does not
   * exist. Other failures still throw. On protocol 0.2.3 (no
   * OpenImageOptional) the not-found errors of each transport are recognised.
   */
  async openImageOptional(reference: string, options: CallOptions = {}): Promise<OpenedImage | null> {
    checkReference(reference);
    try {
      if (this.supports('OpenImageOptional')) {
        const reply = await this.#request('OpenImageOptional', [reference], 'plain', options.signal);
        const id = expectUint('OpenImageOptional', reply.value);
        return id === 0 ? null : new OpenedImage(this, id, reference);
      }
      return await this.openImage(reference, options);
    } catch (error) {
      if (error instanceof RequestError && isNotFound(error.serverMessage)) return null;
      throw error;
    }
  }

  /** Closes an image; its id becomes invalid. Closing twice is a no-op. */
  async closeImage(image: OpenedImage, options: CallOptions = {}): Promise<void> {
    this.#checkOwner(image);
    if (image.closed) return;
    image.markClosed();
    await this.#request('CloseImage', [image.id], 'plain', options.signal);
  }

  /**
   * The image's manifest, converted to OCI by the proxy, as raw bytes, and the
   * digest of the manifest as stored, before that conversion. For a manifest
   * list, both describe the image chosen for the platform, not the list
   * (observed with skopeo 1.9 to 1.22); a platform the list lacks fails here
   * with a RequestError for GetManifest, not in openImage.
   */
  async fetchManifestRaw(image: OpenedImage, options: CallOptions = {}): Promise<{ digest: string; raw: Buffer }> {
    const reply = await this.#request('GetManifest', [this.#id(image)], 'pipe', options.signal);
    const digest = expectString('GetManifest', reply.value);
    return { digest, raw: await this.#readPipe(reply.fds[0]!, reply.pipeId, 'manifest') };
  }

  /** The image's manifest, parsed; see {@link fetchManifestRaw} for the digest. */
  async fetchManifest(image: OpenedImage, options: CallOptions = {}): Promise<{ digest: string; manifest: ImageManifest }> {
    const { digest, raw } = await this.fetchManifestRaw(image, options);
    const manifest = parseJson<ImageManifest>('GetManifest', raw);
    if (!Array.isArray(manifest.layers) || typeof manifest.config?.digest !== 'string') {
      throw new ProtocolError('GetManifest: the manifest has no "config" and "layers"');
    }
    return { digest, manifest };
  }

  /** The image's configuration as raw bytes (GetFullConfig). */
  async fetchConfigRaw(image: OpenedImage, options: CallOptions = {}): Promise<Buffer> {
    const reply = await this.#request('GetFullConfig', [this.#id(image)], 'pipe', options.signal);
    return this.#readPipe(reply.fds[0]!, reply.pipeId, 'config');
  }

  /** The image's configuration, parsed. */
  async fetchConfig(image: OpenedImage, options: CallOptions = {}): Promise<ImageConfig> {
    return parseJson<ImageConfig>('GetFullConfig', await this.fetchConfigRaw(image, options));
  }

  /**
   * Streams a blob (layer or config) by digest and size. The stream ends only
   * after the blob has been verified against both; otherwise it fails with
   * {@link BlobVerificationError}. Destroying it early is safe.
   */
  async getBlob(image: OpenedImage, digest: string, size: number, options: BlobOptions = {}): Promise<BlobStream> {
    const id = this.#id(image);
    hashAlgorithm(digest);
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new InvalidArgumentError(`getBlob: size must be a non-negative integer below 2^53, got ${size}`);
    }
    const transfer = options.transfer ?? (this.supports('GetRawBlob') ? 'GetRawBlob' : 'GetBlob');
    if (transfer === 'GetRawBlob') {
      const { size: reported, stream } = await this.getRawBlob(image, digest, { ...options, expectedSize: size });
      if (reported !== -1 && reported !== size) {
        stream.destroy();
        throw new BlobVerificationError(digest, size, reported, `the source reports ${reported} bytes`);
      }
      return stream;
    }
    const reply = await this.#request('GetBlob', [id, digest, size], 'pipe', options.signal);
    try {
      expectSize('GetBlob', reply.value);
    } catch (error) {
      this.#release(reply.fds, reply.pipeId);
      throw error;
    }
    return new FinishPipeBlobStream(reply.fds[0]!, () => this.#finishPipe(reply.pipeId), { digest, expectedSize: size, signal: options.signal });
  }

  /** {@link getBlob} for a descriptor from a manifest. */
  getDescriptor(image: OpenedImage, descriptor: Pick<Descriptor, 'digest' | 'size'>, options: BlobOptions = {}): Promise<BlobStream> {
    return this.getBlob(image, descriptor.digest, descriptor.size, options);
  }

  /**
   * Streams a blob with GetRawBlob (protocol 0.2.8): no FinishPipe, so any
   * number of these run at once without blocking other calls. The stream
   * verifies the digest (and the size the proxy reported) itself.
   */
  async getRawBlob(
    image: OpenedImage,
    digest: string,
    options: CallOptions & { expectedSize?: number } = {},
  ): Promise<{ size: number; stream: BlobStream }> {
    const id = this.#id(image);
    hashAlgorithm(digest);
    this.#require('GetRawBlob', 'getRawBlob');
    const reply = await this.#request('GetRawBlob', [id, digest], 'dual', options.signal);
    let size: number;
    try {
      size = expectSize('GetRawBlob', reply.value);
    } catch (error) {
      closeFds(reply.fds);
      throw error;
    }
    const expectedSize = options.expectedSize ?? size;
    const stream = new RawBlobStream(reply.fds[0]!, reply.fds[1]!, { digest, expectedSize, signal: options.signal });
    return { size, stream };
  }

  /**
   * The blobs {@link getBlob} can serve for this image, in layer order: for
   * registries and OCI layouts the manifest's layers; for
   * `containers-storage:` the uncompressed layers it stores (protocol 0.2.5
   * and later only; older proxies fall back to the manifest's layers).
   */
  async getLayerInfo(image: OpenedImage, options: CallOptions = {}): Promise<ConvertedLayerInfo[]> {
    const id = this.#id(image);
    if (this.supports('GetLayerInfoPiped')) {
      const reply = await this.#request('GetLayerInfoPiped', [id], 'pipe', options.signal);
      const raw = await this.#readPipe(reply.fds[0]!, reply.pipeId, 'layer info');
      return parseLayerInfo('GetLayerInfoPiped', parseJson<unknown>('GetLayerInfoPiped', raw));
    }
    if (this.supports('GetLayerInfo')) {
      const reply = await this.#request('GetLayerInfo', [id], 'plain', options.signal);
      return parseLayerInfo('GetLayerInfo', reply.value);
    }
    const { manifest } = await this.fetchManifest(image, options);
    return manifest.layers.map(({ digest, size, mediaType }) => ({ digest, size, mediaType }));
  }

  /**
   * {@link getLayerInfo} with each layer's `diffId`: the digest of its
   * uncompressed tar from the config's `rootfs.diff_ids`, which is what an
   * extractor or an ostree-like store verifies against.
   * @throws {ProtocolError} the config lists a different number of diff_ids.
   */
  async getLayerDiffIds(image: OpenedImage, options: CallOptions = {}): Promise<LayerWithDiffId[]> {
    const layers = await this.getLayerInfo(image, options);
    const config = await this.fetchConfig(image, options);
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== layers.length) {
      throw new ProtocolError(`the image has ${layers.length} layers but its config lists ${diffIds.length} diff_ids`);
    }
    return layers.map((layer, i) => ({ ...layer, diffId: diffIds[i]! }));
  }

  /**
   * Shuts the proxy down: sends Shutdown after the calls already queued, waits
   * for skopeo to exit (SIGTERM, then SIGKILL, after `timeoutMs`). Idempotent.
   * @throws {ProxyExitedError} skopeo exited with a non-zero status on its own.
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.#closing ??= this.#shutdown(options.timeoutMs ?? 5000);
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #shutdown(timeoutMs: number): Promise<void> {
    const { child, exited } = this.#child;
    child.ref(); // keep the process alive until the child is reaped
    if (this.#exit) return;
    await this.#transport.sendOneWay('Shutdown').catch(() => {});
    let killed = false;
    const escalate = async (signal: NodeJS.Signals, wait: number): Promise<void> => {
      if (await settlesWithin(exited, wait)) return;
      killed = true;
      child.kill(signal);
    };
    await escalate('SIGTERM', timeoutMs);
    await escalate('SIGKILL', 2000);
    const status = await exited;
    this.#transport.fail(new ProxyClosedError());
    if (!killed && status.code !== 0 && status.code !== null) {
      throw new ProxyExitedError(status.code, status.signal, this.stderr);
    }
  }

  #request(method: string, args: RequestArg[], shape: ReplyShape, signal: AbortSignal | undefined) {
    if (this.#closing) return Promise.reject(new ProxyClosedError());
    return this.#transport.request(method, args, { shape, signal });
  }

  #finishPipe(pipeId: number): Promise<void> {
    // Not abortable: the server's pipe must always be finished.
    return this.#transport.request('FinishPipe', [pipeId]).then(() => undefined);
  }

  async #readPipe(fd: number, pipeId: number, what: string): Promise<Buffer> {
    return readPipe(fd, this.#finishPipe(pipeId), what);
  }

  #release(fds: number[], pipeId: number): void {
    closeFds(fds);
    if (pipeId !== 0) this.#finishPipe(pipeId).catch(() => {});
  }

  #checkOwner(image: OpenedImage): void {
    if (!(image instanceof OpenedImage) || image.proxy !== this) {
      throw new InvalidArgumentError('this OpenedImage belongs to another ImageProxy (or is not one)');
    }
  }

  #id(image: OpenedImage): number {
    this.#checkOwner(image);
    if (image.closed) throw new ImageClosedError(image.reference);
    if (this.#closing) throw new ProxyClosedError();
    return image.id;
  }

  #require(feature: Feature, operation: string): void {
    if (!this.supports(feature)) throw new UnsupportedOperationError(operation, FEATURE_VERSIONS[feature], this.protocolVersion);
  }
}

function checkReference(reference: string): void {
  if (typeof reference !== 'string' || reference.trim() === '') {
    throw new InvalidArgumentError('an image reference must be a non-empty string such as "docker://quay.io/fedora/fedora:42"');
  }
}

/**
 * Not-found messages of each transport, for OpenImageOptional on 0.2.3 and
 * for cases newer proxies still report as errors.
 */
const NOT_FOUND_PATTERNS = [
  /manifest unknown/i, // docker://, tag or digest missing
  /name unknown/i, // docker://, repository missing
  /no descriptor found for reference/i, // oci: tag missing
  /index\.json: no such file or directory/i, // oci: directory missing
  /manifest\.json: no such file or directory/i, // dir:
  /^open [^:]*: no such file or directory$/im, // oci-archive:, docker-archive:
];

export function isNotFound(message: string): boolean {
  return NOT_FOUND_PATTERNS.some((pattern) => pattern.test(message));
}

function parseJson<T>(method: string, raw: Buffer): T {
  try {
    return JSON.parse(raw.toString('utf8')) as T;
  } catch {
    throw new ProtocolError(`${method}: the proxy sent a document that is not JSON`);
  }
}

function parseLayerInfo(method: string, value: unknown): ConvertedLayerInfo[] {
  if (!Array.isArray(value)) throw new ProtocolError(`${method}: expected an array of layers`);
  return value.map((entry: unknown) => {
    const layer = entry as Record<string, unknown> | null;
    if (!layer || typeof layer.digest !== 'string' || typeof layer.media_type !== 'string') {
      throw new ProtocolError(`${method}: a layer entry lacks digest or media_type`);
    }
    return { digest: layer.digest, size: expectSize(method, layer.size), mediaType: layer.media_type };
  });
}

function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void promise.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}


