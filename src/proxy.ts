/**
 * ImageProxy: a skopeo `experimental-image-proxy` child and the methods of
 * its protocol, each a few lines on top of the transport. If a stalled blob
 * leaves the child wedged, the proxy replaces it and re-opens held images.
 */
import { EventEmitter } from 'node:events';
import { needsFeatureProbe, planSpawn, type ImageProxyConfig, type SpawnPlan } from './config.js';
import {
  BlobVerificationError,
  ImageClosedError,
  ImageNotFoundError,
  InvalidArgumentError,
  ProtocolError,
  ProxyClosedError,
  ProxyExitedError,
  ProxyRestartedError,
  ProxyTooOldError,
  RequestError,
  RequestStallError,
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
  UNKNOWN_SIZE,
  type Feature,
  type Reply,
  type RequestArg,
} from './protocol.js';
import { RetryingBlobStream, withRetry, type RetryPolicy } from './retry.js';
import { findSetpriv, probeFeatures, spawnChild, type SpawnedChild } from './spawn.js';
import { FinishPipeBlobStream, hashAlgorithm, RawBlobStream, readPipe, type BlobStream, type BlobTransfer } from './streams.js';
import { isStorageReference, STORE_BLOB_HINT, storeLayers, storeNotFoundHint } from './storage.js';
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
  /** Overrides the config's `stallTimeout` for this blob (ms; 0 disables). */
  stallTimeout?: number;
  /** Overrides the config's `retry` for this blob; retries happen only before any byte was emitted. */
  retry?: RetryPolicy;
}

/** A layer and the digest of its uncompressed contents. */
export interface LayerWithDiffId extends ConvertedLayerInfo {
  /** The digest of the layer's uncompressed contents (the config's `rootfs.diff_ids` entry). */
  diffId: string;
}

/** Options of {@link ImageProxy.close}. */
export interface CloseOptions {
  /** How long to wait for skopeo to exit after Shutdown before SIGTERM, then SIGKILL. Default 5000. */
  timeoutMs?: number;
}

/** The `restart` event: the proxy replaced a wedged skopeo. */
export interface RestartEvent {
  /** Why: usually the StallError of a blob. */
  reason: Error;
  /** Restarts so far, this one included. */
  restarts: number;
}

export const DEFAULT_STALL_TIMEOUT_MS = 60_000;

/** An image opened on a proxy. Close it (or `await using` it) when done. */
export class OpenedImage {
  #id: number;
  #closed = false;
  #lost: Error | undefined;

  /** @internal */
  constructor(
    /** The proxy the image was opened on. */
    readonly proxy: ImageProxy,
    id: number,
    /** The reference it was opened with, e.g. `docker://quay.io/fedora/fedora:42`. */
    readonly reference: string,
  ) {
    this.#id = id;
  }

  /** The proxy's current id for this image (it changes if the proxy restarts). */
  get id(): number {
    return this.#id;
  }

  /** Whether the image was closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  markClosed(): void {
    this.#closed = true;
  }

  /** @internal After a restart: the new child's id, or why it could not be re-opened. */
  rebind(id: number | Error): void {
    if (typeof id === 'number') this.#id = id;
    else this.#lost = id;
  }

  /** @internal */
  get lost(): Error | undefined {
    return this.#lost;
  }

  /** Same as `proxy.closeImage(this)`. */
  close(options?: CallOptions): Promise<void> {
    return this.proxy.closeImage(this, options);
  }

  /** Closes the image, if the proxy still runs (`await using image = …`). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#closed && this.proxy.running) await this.close();
  }
}

/** One skopeo child and the transport to it. */
interface Generation {
  child: SpawnedChild;
  transport: Transport;
  version: string;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

/**
 * A running `skopeo experimental-image-proxy`. Create one with
 * {@link ImageProxy.spawn}; close it with {@link ImageProxy.close} or
 * `await using`.
 *
 * Calls may be made concurrently; the proxy serves them one at a time in
 * order. Blob streams may be read concurrently and in any order.
 *
 * Events: `restart` ({@link RestartEvent}) when a wedged skopeo was replaced.
 */
export class ImageProxy extends EventEmitter<{
  /** A wedged skopeo was replaced by a new one. */
  restart: [RestartEvent];
}> {
  /** The protocol version the proxy reported, e.g. `0.2.8`. */
  readonly protocolVersion: string;
  readonly #plan: SpawnPlan;
  readonly #config: ImageProxyConfig;
  #generation: Generation;
  #recovering: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Why the proxy can no longer work (a restart that could not start skopeo). */
  #fatal: Error | undefined;
  readonly #openImages = new Set<OpenedImage>();
  #restarts = 0;

  private constructor(plan: SpawnPlan, config: ImageProxyConfig, generation: Generation) {
    super();
    this.#plan = plan;
    this.#config = config;
    this.#generation = generation;
    this.protocolVersion = generation.version;
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
    let proxy: ImageProxy | undefined;
    const generation = await launch(plan, () => proxy !== undefined && proxy.#closing !== undefined);
    proxy = new ImageProxy(plan, config, generation);
    return proxy;
  }

  /** The skopeo process id (for diagnostics). */
  get pid(): number | undefined {
    return this.#generation.child.child.pid;
  }

  /** The last 64 KiB of skopeo's stderr. */
  get stderr(): string {
    return this.#generation.child.stderr();
  }

  /** Whether the proxy still accepts calls (not closed, not exited). */
  get running(): boolean {
    return this.#closing === undefined && this.#fatal === undefined && (this.#recovering !== undefined || this.#generation.transport.open);
  }

  /** How many times a wedged skopeo was replaced. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Whether the running proxy is new enough for a protocol feature. */
  supports(feature: Feature): boolean {
    return compareVersions(this.protocolVersion, FEATURE_VERSIONS[feature]) >= 0;
  }

  /**
   * Opens an image by any containers/image reference (`docker://…`, `oci:…`,
   * `oci-archive:…`, `dir:…`, `docker-archive:…`, `containers-storage:…`).
   * @throws {ImageNotFoundError} the image is not there (for `containers-storage:`,
   *   the message says how to name another store or driver).
   * @throws {RequestError} unauthorized, policy rejection, malformed reference.
   */
  async openImage(reference: string, options: CallOptions = {}): Promise<OpenedImage> {
    checkReference(reference);
    let reply: Reply;
    try {
      reply = await this.#call('OpenImage', () => [reference], 'plain', options.signal, closeAbandonedImage);
    } catch (error) {
      if (error instanceof RequestError && isNotFound(error.serverMessage)) {
        throw new ImageNotFoundError(reference, error.method, error.serverMessage, error.code, { cause: error, hint: storeNotFoundHint(reference) });
      }
      throw error;
    }
    return this.#track(new OpenedImage(this, expectUint('OpenImage', reply.value), reference));
  }

  /**
   * Like {@link openImage}, but resolves to `null` when the image does not
   * exist. Other failures still throw. On protocol 0.2.3 (no
   * OpenImageOptional) the not-found errors of each transport are recognised.
   */
  async openImageOptional(reference: string, options: CallOptions = {}): Promise<OpenedImage | null> {
    checkReference(reference);
    let image: OpenedImage | null = null;
    try {
      if (!this.supports('OpenImageOptional')) image = await this.openImage(reference, options);
      else {
        const reply = await this.#call('OpenImageOptional', () => [reference], 'plain', options.signal, closeAbandonedImage);
        const id = expectUint('OpenImageOptional', reply.value);
        image = id === 0 ? null : this.#track(new OpenedImage(this, id, reference));
      }
      // dir: opens lazily, whether or not the directory exists: look for its manifest.
      if (image && reference.startsWith('dir:')) await this.fetchManifestRaw(image, options);
      return image;
    } catch (error) {
      if (error instanceof RequestError && isNotFound(error.serverMessage)) {
        await image?.close().catch(() => {});
        return null;
      }
      throw error;
    }
  }

  /** Closes an image; its id becomes invalid. Closing twice is a no-op. */
  async closeImage(image: OpenedImage, options: CallOptions = {}): Promise<void> {
    this.#checkOwner(image);
    if (image.closed) return;
    image.markClosed();
    // It stays tracked until CloseImage is answered, so a restart in between
    // re-opens it and the (re-sent) CloseImage finds it on the new child.
    try {
      const id = (): RequestArg[] => {
        if (image.lost) throw image.lost;
        return [image.id];
      };
      await this.#call('CloseImage', id, 'plain', options.signal);
    } catch (error) {
      if (!image.lost) throw error; // one a restart could not re-open is gone anyway
    } finally {
      this.#openImages.delete(image);
    }
  }

  /**
   * The image's manifest, converted to OCI by the proxy, as raw bytes, and the
   * digest of the manifest as stored, before that conversion. For a manifest
   * list, both describe the image chosen for the platform, not the list
   * (observed with skopeo 1.9 to 1.22); a platform the list lacks fails here
   * with a RequestError for GetManifest, not in openImage.
   */
  async fetchManifestRaw(
    image: OpenedImage,
    options: CallOptions = {},
  ): Promise<{
    /** The digest of the manifest as stored (before any conversion to OCI). */
    digest: string;
    /** The manifest's bytes as the proxy sent them. */
    raw: Buffer;
  }> {
    const { reply, transport } = await this.#callWith('GetManifest', () => [this.#id(image)], 'pipe', options.signal);
    const digest = expectString('GetManifest', reply.value);
    return { digest, raw: await readPipe(reply.fds[0]!, finishPipe(transport, reply.pipeId), 'manifest') };
  }

  /** The image's manifest, parsed; see {@link fetchManifestRaw} for the digest. */
  async fetchManifest(
    image: OpenedImage,
    options: CallOptions = {},
  ): Promise<{
    /** The digest of the manifest as stored (before any conversion to OCI). */
    digest: string;
    /** The manifest, as OCI. */
    manifest: ImageManifest;
  }> {
    const { digest, raw } = await this.fetchManifestRaw(image, options);
    const manifest = parseJson<ImageManifest>('GetManifest', raw);
    if (!Array.isArray(manifest.layers) || typeof manifest.config?.digest !== 'string') {
      throw new ProtocolError('GetManifest: the manifest has no "config" and "layers"');
    }
    return { digest, manifest };
  }

  /** The image's configuration as raw bytes (GetFullConfig). */
  async fetchConfigRaw(image: OpenedImage, options: CallOptions = {}): Promise<Buffer> {
    const { reply, transport } = await this.#callWith('GetFullConfig', () => [this.#id(image)], 'pipe', options.signal);
    return readPipe(reply.fds[0]!, finishPipe(transport, reply.pipeId), 'config');
  }

  /** The image's configuration, parsed. */
  async fetchConfig(image: OpenedImage, options: CallOptions = {}): Promise<ImageConfig> {
    return parseJson<ImageConfig>('GetFullConfig', await this.fetchConfigRaw(image, options));
  }

  /**
   * Streams a blob (layer or config) by digest and size. The stream ends only
   * after the blob has been verified against both; otherwise it fails with
   * {@link BlobVerificationError}. Destroying it early is safe. A stream that
   * receives nothing for `stallTimeout` while being read fails with
   * {@link StallError}.
   *
   * `size` may be left out (or be {@link UNKNOWN_SIZE}, -1, as
   * {@link getLayerInfo} reports for `containers-storage:` before protocol
   * 0.2.5): the size the proxy reports is then read, `stream.expectedSize`
   * tells it once this resolves, and the digest is verified here as well as
   * by the proxy.
   */
  async getBlob(image: OpenedImage, digest: string, size?: number, options: BlobOptions = {}): Promise<BlobStream> {
    this.#id(image);
    hashAlgorithm(digest);
    if (size !== undefined && size !== UNKNOWN_SIZE && (!Number.isSafeInteger(size) || size < 0)) {
      throw new InvalidArgumentError(`getBlob: size must be a non-negative integer below 2^53, or -1 (or left out) when unknown; got ${size}`);
    }
    const policy = options.retry ?? this.#config.retry;
    const known = size === undefined ? UNKNOWN_SIZE : size;
    const open = () => this.#openBlob(image, digest, known, options);
    if (!policy || policy.attempts <= 1) return open();
    let attempt = 1;
    const first = await withRetry(policy, (n) => {
      attempt = n;
      return open();
    });
    return new RetryingBlobStream(first, open, policy, attempt);
  }

  /** {@link getBlob} for a descriptor from a manifest (or from {@link getLayerInfo}; its size may be -1). */
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
    options: CallOptions & { expectedSize?: number; stallTimeout?: number } = {},
  ): Promise<{
    /** The blob's size as the proxy reported it, in bytes. */
    size: number;
    /** The blob's bytes, verified as they are read. */
    stream: BlobStream;
  }> {
    this.#id(image);
    hashAlgorithm(digest);
    this.#require('GetRawBlob', 'getRawBlob');
    const { reply, transport } = await this.#callWith('GetRawBlob', () => [this.#id(image), digest], 'dual', options.signal);
    const { child } = this.#generation;
    let size: number;
    try {
      size = expectSize('GetRawBlob', reply.value);
    } catch (error) {
      closeFds(reply.fds);
      throw error;
    }
    const stream = new RawBlobStream(reply.fds[0]!, reply.fds[1]!, {
      digest,
      expectedSize: options.expectedSize ?? size,
      signal: options.signal,
      stallTimeoutMs: options.stallTimeout ?? this.#stallTimeoutMs,
      proxyFailure: async () => ((await settlesWithin(child.exited, 1000)) ? transport.failure : undefined),
    });
    return { size, stream };
  }

  /**
   * The blobs {@link getBlob} can serve for this image, in layer order: for
   * registries and OCI layouts the manifest's layers; for
   * `containers-storage:` the uncompressed layers it stores, under their
   * diff_ids (GetLayerInfo, protocol 0.2.5). Before 0.2.5 the store's layers
   * are listed from the config's diff_ids, and their sizes are not known
   * ({@link UNKNOWN_SIZE}, -1) until {@link getBlob} fetches them, unless
   * the manifest names the same uncompressed blob (an image built locally).
   */
  async getLayerInfo(image: OpenedImage, options: CallOptions = {}): Promise<ConvertedLayerInfo[]> {
    return (await this.#servedLayers(image, options)).layers;
  }

  /** {@link getLayerInfo}, and the config when it had to be fetched for it. */
  async #servedLayers(image: OpenedImage, options: CallOptions): Promise<{ layers: ConvertedLayerInfo[]; config?: ImageConfig }> {
    if (this.supports('GetLayerInfoPiped')) {
      const { reply, transport } = await this.#callWith('GetLayerInfoPiped', () => [this.#id(image)], 'pipe', options.signal);
      const raw = await readPipe(reply.fds[0]!, finishPipe(transport, reply.pipeId), 'layer info');
      return { layers: parseLayerInfo('GetLayerInfoPiped', parseJson<unknown>('GetLayerInfoPiped', raw)) };
    }
    if (this.supports('GetLayerInfo')) {
      const reply = await this.#call('GetLayerInfo', () => [this.#id(image)], 'plain', options.signal);
      return { layers: parseLayerInfo('GetLayerInfo', reply.value) };
    }
    const { manifest } = await this.fetchManifest(image, options);
    if (!isStorageReference(image.reference)) {
      return { layers: manifest.layers.map(({ digest, size, mediaType }) => ({ digest, size, mediaType })) };
    }
    // The store serves what it keeps, the uncompressed layers, and not the
    // compressed blobs the manifest (as pulled) names.
    const config = await this.fetchConfig(image, options);
    return { layers: storeLayers(manifest.layers, config.rootfs?.diff_ids ?? []), config };
  }

  /**
   * {@link getLayerInfo} with each layer's `diffId`: the digest of its
   * uncompressed tar from the config's `rootfs.diff_ids`, which is what an
   * extractor or an ostree-like store verifies against.
   * @throws {ProtocolError} the config lists a different number of diff_ids.
   */
  async getLayerDiffIds(image: OpenedImage, options: CallOptions = {}): Promise<LayerWithDiffId[]> {
    const served = await this.#servedLayers(image, options);
    const layers = served.layers;
    const config = served.config ?? (await this.fetchConfig(image, options));
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

  /** Same as {@link close} (`await using proxy = …`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #shutdown(timeoutMs: number): Promise<void> {
    await this.#recovering?.catch(() => {});
    const { child, transport } = this.#generation;
    child.child.ref(); // keep the process alive until the child is reaped
    if (this.#generation.exit) return;
    await transport.sendOneWay('Shutdown').catch(() => {});
    let killed = false;
    const escalate = async (signal: NodeJS.Signals, wait: number): Promise<void> => {
      if (await settlesWithin(child.exited, wait)) return;
      killed = true;
      child.child.kill(signal);
    };
    await escalate('SIGTERM', timeoutMs);
    await escalate('SIGKILL', 2000);
    const status = await child.exited;
    transport.fail(new ProxyClosedError());
    if (!killed && status.code !== 0 && status.code !== null) {
      throw new ProxyExitedError(status.code, status.signal, this.stderr);
    }
  }

  /** Opens a blob stream; `size` may be {@link UNKNOWN_SIZE}. */
  async #openBlob(image: OpenedImage, digest: string, size: number, options: BlobOptions): Promise<BlobStream> {
    try {
      return await this.#openBlobStream(image, digest, size, options);
    } catch (error) {
      // A store asked for a blob it does not keep: most likely a compressed digest from the manifest.
      if (error instanceof RequestError && isStorageReference(image.reference) && /locating item named/.test(error.serverMessage)) {
        throw new RequestError(error.method, error.serverMessage, error.code, { cause: error, hint: STORE_BLOB_HINT });
      }
      throw error;
    }
  }

  async #openBlobStream(image: OpenedImage, digest: string, size: number, options: BlobOptions): Promise<BlobStream> {
    const stallTimeoutMs = options.stallTimeout ?? this.#stallTimeoutMs;
    const transfer = options.transfer ?? (this.supports('GetRawBlob') ? 'GetRawBlob' : 'GetBlob');
    const known = size !== UNKNOWN_SIZE;
    if (transfer === 'GetRawBlob') {
      const { size: reported, stream } = await this.getRawBlob(image, digest, {
        ...options,
        ...(known && { expectedSize: size }),
        stallTimeout: stallTimeoutMs,
      });
      if (known && reported !== -1 && reported !== size) {
        stream.destroy();
        throw new BlobVerificationError(digest, size, reported, `the source reports ${reported} bytes`);
      }
      return stream;
    }
    // GetBlob needs a size. When it is unknown, ask for 0: the server's reply
    // value is the size the source reports, and its only complaint will be
    // that 0 bytes were expected (see FinishPipeBlobStream).
    const requested = known ? size : 0;
    const { reply, transport } = await this.#callWith('GetBlob', () => [this.#id(image), digest, requested], 'pipe', options.signal);
    let reported: number;
    try {
      reported = expectSize('GetBlob', reply.value);
    } catch (error) {
      closeFds(reply.fds);
      finishPipe(transport, reply.pipeId).catch(() => {});
      throw error;
    }
    return new FinishPipeBlobStream(reply.fds[0]!, () => finishPipe(transport, reply.pipeId), {
      digest,
      expectedSize: known ? size : reported,
      requestedSize: requested,
      signal: options.signal,
      stallTimeoutMs,
      // The server's FinishPipe would wait for its stalled writer forever,
      // blocking every later request: replace the child.
      onStall: (error) => this.#restart(error, transport),
    });
  }

  async #call(
    method: string,
    args: () => RequestArg[],
    shape: ReplyShape,
    signal: AbortSignal | undefined,
    onAbandoned?: (reply: Reply, transport: Transport) => void,
  ): Promise<Reply> {
    return (await this.#callWith(method, args, shape, signal, onAbandoned)).reply;
  }

  /**
   * Sends a request on the current child. A request that was still queued when
   * the child was replaced is sent again to the new one (its image ids are
   * looked up afresh by `args`); one already sent fails with a retryable error.
   */
  async #callWith(
    method: string,
    args: () => RequestArg[],
    shape: ReplyShape,
    signal: AbortSignal | undefined,
    onAbandoned?: (reply: Reply, transport: Transport) => void,
  ): Promise<{ reply: Reply; transport: Transport }> {
    for (;;) {
      if (this.#closing) throw new ProxyClosedError();
      await this.#recovering;
      if (this.#fatal) throw this.#fatal;
      const { transport } = this.#generation;
      try {
        const abandoned = onAbandoned && ((reply: Reply) => onAbandoned(reply, transport));
        // An unanswered request blocks every later one: past the stall timeout, replace the child.
        const deadline = { ms: this.#stallTimeoutMs, onExpired: () => this.#restart(new RequestStallError(method, this.#stallTimeoutMs), transport) };
        return { reply: await transport.request(method, args(), { shape, signal, onAbandoned: abandoned, deadline }), transport };
      } catch (error) {
        if (error instanceof ProxyRestartedError && !error.sent) continue;
        throw error;
      }
    }
  }

  /** Replaces a wedged child: fail what it holds, start another, re-open held images. */
  #restart(reason: Error, wedged: Transport): void {
    if (this.#closing || this.#recovering || this.#generation.transport !== wedged) return;
    const old = this.#generation;
    old.transport.fail(new ProxyRestartedError(reason, true), new ProxyRestartedError(reason, false));
    old.child.child.kill('SIGKILL');
    this.#recovering = (async () => {
      try {
        this.#generation = await this.#reopenAll();
        this.#restarts++;
        this.emit('restart', { reason, restarts: this.#restarts });
      } catch (error) {
        // No replacement: the proxy stays failed; later calls see why.
        this.#fatal = error as Error;
      }
    })().finally(() => {
      this.#recovering = undefined;
    });
  }

  /**
   * Starts a child and re-opens the held images on it, in order. An image
   * whose re-open gets no answer is given up (its calls then fail with the
   * stall), and the hung child is replaced again for the rest.
   */
  async #reopenAll(): Promise<Generation> {
    let pending = [...this.#openImages];
    for (;;) {
      const next = await launch(this.#plan, () => this.#closing !== undefined);
      const hung = await this.#reopen(next, pending);
      if (hung < 0) return next;
      next.transport.fail(new ProxyClosedError());
      next.child.child.kill('SIGKILL');
      pending = pending.slice(hung + 1);
    }
  }

  /** Re-opens `images` on `next`; the index of the one that got no answer, or -1. */
  async #reopen(next: Generation, images: OpenedImage[]): Promise<number> {
    for (const [index, image] of images.entries()) {
      const stall = new RequestStallError('OpenImage', this.#stallTimeoutMs);
      let expired = false;
      const deadline = { ms: this.#stallTimeoutMs, onExpired: () => ((expired = true), image.rebind(stall), next.transport.fail(stall)) };
      try {
        image.rebind(expectUint('OpenImage', (await next.transport.request('OpenImage', [image.reference], { deadline })).value));
      } catch (error) {
        if (expired) return index;
        image.rebind(error as Error);
      }
    }
    return -1;
  }

  get #stallTimeoutMs(): number {
    return this.#config.stallTimeout ?? DEFAULT_STALL_TIMEOUT_MS;
  }

  #track(image: OpenedImage): OpenedImage {
    this.#openImages.add(image);
    return image;
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
    if (image.lost) throw image.lost;
    return image.id;
  }

  #require(feature: Feature, operation: string): void {
    if (!this.supports(feature)) throw new UnsupportedOperationError(operation, FEATURE_VERSIONS[feature], this.protocolVersion);
  }
}

/** Spawns a child and performs the handshake. */
async function launch(plan: SpawnPlan, closing: () => boolean): Promise<Generation> {
  const child = spawnChild(plan);
  const exitedError = (): ProxyExitedError => new ProxyExitedError(generation.exit?.code ?? null, generation.exit?.signal ?? null, child.stderr());
  // The socket can report EOF before the exit status is known: give the exit
  // a moment so the error can say how skopeo died.
  const onDisconnect = (): void => {
    const timer = setTimeout(() => transport.fail(exitedError()), 2000);
    void child.exited.then(() => {
      clearTimeout(timer);
      transport.fail(exitedError());
    });
  };
  const transport = new Transport(child.socketFd, onDisconnect);
  const generation: Generation = { child, transport, version: '' };
  void child.exited.then((status) => {
    generation.exit = status;
    transport.fail(closing() ? new ProxyClosedError() : exitedError());
  });

  try {
    const reply = await transport.request('Initialize', []);
    const version = expectString('Initialize', reply.value);
    if (!isVersion(version)) throw new ProtocolError(`Initialize: ${JSON.stringify(version)} is not a version`);
    if (compareVersions(version, MINIMUM_PROTOCOL_VERSION) < 0) throw new ProxyTooOldError(MINIMUM_PROTOCOL_VERSION, version);
    generation.version = version;
    return generation;
  } catch (error) {
    transport.fail(new ProxyClosedError());
    child.child.ref();
    child.child.kill('SIGKILL');
    await child.exited;
    if (error instanceof ProxyExitedError) {
      const why = exitedError().message.replace(/^skopeo image proxy /, '');
      throw new SpawnError(`${plan.argv.join(' ')} did not start: ${why}`, plan.argv, { cause: error });
    }
    throw error;
  }
}

/** An OpenImage the caller aborted still opened the image on the server: close it there. */
function closeAbandonedImage(reply: Reply, transport: Transport): void {
  if (typeof reply.value === 'number' && reply.value > 0) transport.request('CloseImage', [reply.value]).catch(() => {});
}

/** FinishPipe on the child that owns the pipe; never abortable, the pipe must be finished. */
function finishPipe(transport: Transport, pipeId: number): Promise<void> {
  return transport.request('FinishPipe', [pipeId]).then(() => undefined);
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
  /creating temp directory: (open [^:]+: no such file or directory|archive file not found)/i, // oci-archive:
  /^opening file "[^"]*": open [^:]+: no such file or directory$/i, // docker-archive:
  /does not resolve to an image ID/i, // containers-storage: not in this store (or stored with another driver)
];

/** Whether a proxy error message says the image does not exist. */
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
