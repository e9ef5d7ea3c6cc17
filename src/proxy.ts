/**
 * ImageProxy: the facade. Each method checks its arguments, resolves the
 * call's policy once, and hands the call to the module that owns it:
 * images, metadata, blobs; the supervisor owns the skopeo child.
 */
import { EventEmitter } from 'node:events';
import { blobRequest, fetchBlob, fetchRawBlob, type BlobOptions, type BlobStream } from './blobs/index.js';
import { needsFeatureProbe, planSpawn, type ImageProxyConfig } from './config.js';
import { InvalidArgumentError, ProxyClosedError } from './errors.js';
import { checkOwner, closeAll, closeImage, openImage, openImageOptional, OpenedImage, type CallContext, type CallOptions } from './images.js';
import { fetchConfigRaw, fetchManifestRaw, layerDiffIds, parseConfig, parseManifest, servedLayers, type LayerWithDiffId } from './metadata.js';
import type { ConvertedLayerInfo, Descriptor, ImageConfig, ImageManifest } from './oci.js';
import { callPolicy, configPolicy, DEFAULT_TIMEOUT_MS, type PolicyOptions } from './policy.js';
import type { Feature } from './protocol.js';
import { findSetpriv, probeFeatures } from './spawn.js';
import { Supervisor, type RestartEvent } from './supervisor.js';

export { OpenedImage, type CallOptions } from './images.js';
export type { BlobOptions } from './blobs/index.js';
export type { LayerWithDiffId } from './metadata.js';
export type { RestartEvent } from './supervisor.js';

/** Options of {@link ImageProxy.close}. */
export interface CloseOptions {
  /** How long to wait for skopeo to exit after Shutdown before SIGTERM, then SIGKILL. Default 5000. */
  timeoutMs?: number;
}

/** The default of `replyTimeout` and `bodyIdleTimeout` (and so of `stallTimeout`), in ms. */
export const DEFAULT_STALL_TIMEOUT_MS = DEFAULT_TIMEOUT_MS;

/**
 * A running `skopeo experimental-image-proxy`. Create one with
 * {@link ImageProxy.spawn}; close it with {@link ImageProxy.close} or
 * `await using`. Calls may be made concurrently; the proxy serves them one at
 * a time in order. Blob streams may be read concurrently and in any order.
 *
 * Events: `restart` ({@link RestartEvent}) when a wedged skopeo was replaced.
 */
export class ImageProxy extends EventEmitter<{
  /** A wedged skopeo was replaced by a new one. */
  restart: [RestartEvent];
}> {
  readonly #supervisor: Supervisor;
  #closing: Promise<void> | undefined;

  private constructor(supervisor: Supervisor) {
    super();
    this.#supervisor = supervisor;
    supervisor.on('restart', (event) => this.emit('restart', event));
  }

  /**
   * Starts skopeo and performs the protocol handshake (within `replyTimeout`).
   * @throws {ConfigurationError} contradictory, unsupported or out-of-range config (nothing is spawned).
   * @throws {SpawnError} skopeo is missing, died at start, or did not answer (its stderr is quoted).
   * @throws {ProxyTooOldError} skopeo speaks a protocol older than 0.2.3.
   */
  static async spawn(config: ImageProxyConfig = {}): Promise<ImageProxy> {
    const policy = configPolicy(config);
    const prefix = config.skopeoCommand ?? ['skopeo'];
    const features = needsFeatureProbe(config) ? await probeFeatures(prefix) : undefined;
    const plan = planSpawn(config, { env: process.env, setpriv: findSetpriv(), features });
    return new ImageProxy(await Supervisor.start(plan, policy));
  }

  /** The protocol version the proxy reported, e.g. `0.2.8`. */
  get protocolVersion(): string {
    return this.#supervisor.protocolVersion;
  }

  /** The skopeo process id (for diagnostics). */
  get pid(): number | undefined {
    return this.#supervisor.pid;
  }

  /** The last 64 KiB of skopeo's stderr. */
  get stderr(): string {
    return this.#supervisor.stderr;
  }

  /** Whether the proxy still accepts calls (not closed, not exited). */
  get running(): boolean {
    return this.#closing === undefined && this.#supervisor.running;
  }

  /** How many times a wedged skopeo was replaced. */
  get restarts(): number {
    return this.#supervisor.restarts;
  }

  /** Whether the running proxy is new enough for a protocol feature. */
  supports(feature: Feature): boolean {
    return this.#supervisor.supports(feature);
  }

  /**
   * Opens an image by any containers/image reference (`docker://…`, `oci:…`,
   * `oci-archive:…`, `dir:…`, `docker-archive:…`, `containers-storage:…`).
   * @throws {ImageNotFoundError} the image is not there (for `containers-storage:`,
   *   the message says how to name another store or driver).
   * @throws {RequestError} unauthorized, policy rejection, malformed reference.
   */
  async openImage(reference: string, options: CallOptions = {}): Promise<OpenedImage> {
    return openImage(this.#supervisor, this, reference, this.#call(options));
  }

  /**
   * Like {@link openImage}, but resolves to `null` when the image does not
   * exist. Other failures still throw. On protocol 0.2.3 (no
   * OpenImageOptional) the not-found errors of each transport are recognised.
   */
  async openImageOptional(reference: string, options: CallOptions = {}): Promise<OpenedImage | null> {
    const call = this.#call(options);
    return openImageOptional(this.#supervisor, this, reference, call, (image) => fetchManifestRaw(this.#supervisor, image, call));
  }

  /**
   * Closes an image; its id becomes invalid. Closing twice is a no-op. An
   * aborted `signal` stops the wait, not the closing: CloseImage is sent anyway.
   */
  async closeImage(image: OpenedImage, options: CallOptions = {}): Promise<void> {
    checkOwner(image, this);
    await closeImage(this.#supervisor, image, this.#call(options));
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
    return this.#withImage(image, options, (call) => fetchManifestRaw(this.#supervisor, image, call));
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
    return { digest, manifest: parseManifest(raw) };
  }

  /** The image's configuration as raw bytes (GetFullConfig). */
  async fetchConfigRaw(image: OpenedImage, options: CallOptions = {}): Promise<Buffer> {
    return this.#withImage(image, options, (call) => fetchConfigRaw(this.#supervisor, image, call));
  }

  /** The image's configuration, parsed. */
  async fetchConfig(image: OpenedImage, options: CallOptions = {}): Promise<ImageConfig> {
    return parseConfig(await this.fetchConfigRaw(image, options));
  }

  /**
   * Streams a blob (layer or config) by digest and size. The stream ends only
   * after the blob has been verified against both; otherwise it fails with
   * {@link BlobVerificationError}; silent for `bodyIdleTimeout` while read, with
   * {@link StallError}. Destroying it early is safe. `size` left out or -1
   * ({@link UNKNOWN_SIZE}): the proxy's size is read (`stream.expectedSize`)
   * and the digest is verified here as well as by the proxy.
   */
  async getBlob(image: OpenedImage, digest: string, size?: number, options: BlobOptions = {}): Promise<BlobStream> {
    return this.#withImage(image, options, (call) => fetchBlob(this.#supervisor, blobRequest(this.#supervisor, image, digest, size, options.transfer), call));
  }

  /** {@link getBlob} for a descriptor from a manifest (or from {@link getLayerInfo}; its size may be -1). */
  async getDescriptor(image: OpenedImage, descriptor: Pick<Descriptor, 'digest' | 'size'>, options: BlobOptions = {}): Promise<BlobStream> {
    if (typeof descriptor !== 'object' || descriptor === null) {
      throw new InvalidArgumentError(`getDescriptor: expected a descriptor with digest and size, got ${String(descriptor)}`);
    }
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
    options: CallOptions & Pick<BlobOptions, 'bodyIdleTimeout' | 'stallTimeout'> & { expectedSize?: number } = {},
  ): Promise<{
    /** The blob's size as the proxy reported it, in bytes (-1 when the source cannot tell). */
    size: number;
    /** The blob's bytes, verified as they are read. */
    stream: BlobStream;
  }> {
    return this.#withImage(image, options, (call) => fetchRawBlob(this.#supervisor, image, digest, options.expectedSize, call));
  }

  /**
   * The blobs {@link getBlob} can serve, in layer order: the manifest's
   * layers, or for `containers-storage:` the uncompressed layers it stores
   * (before protocol 0.2.5 listed from the config, with size -1 until fetched).
   */
  async getLayerInfo(image: OpenedImage, options: CallOptions = {}): Promise<ConvertedLayerInfo[]> {
    return (await this.#withImage(image, options, (call) => servedLayers(this.#supervisor, image, call))).layers;
  }

  /**
   * {@link getLayerInfo} with each layer's `diffId`: the digest of its
   * uncompressed tar from the config's `rootfs.diff_ids`, which is what an
   * extractor or an ostree-like store verifies against.
   * @throws {ProtocolError} the config lists a different number of diff_ids.
   */
  async getLayerDiffIds(image: OpenedImage, options: CallOptions = {}): Promise<LayerWithDiffId[]> {
    return this.#withImage(image, options, (call) => layerDiffIds(this.#supervisor, image, call));
  }

  /**
   * Shuts the proxy down: closes the images still open (so the server frees
   * what they hold, e.g. an `oci-archive:`'s extracted copy), sends Shutdown
   * after the calls already queued, waits for skopeo to exit (SIGTERM, then
   * SIGKILL, after `timeoutMs`). Idempotent.
   * @throws {ProxyExitedError} skopeo exited with a non-zero status on its own.
   */
  close(options: CloseOptions = {}): Promise<void> {
    const call = this.#closing ? undefined : this.#call({});
    this.#closing ??= closeAll(this.#supervisor, call!).then(() => this.#supervisor.shutdown(options.timeoutMs ?? 5000));
    return this.#closing;
  }

  /** Same as {@link close} (`await using proxy = …`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Resolves the call's options once; a bad one throws InvalidArgumentError naming it. */
  #call(options: CallOptions & PolicyOptions): CallContext {
    if (this.#closing) throw new ProxyClosedError();
    return { signal: options.signal, policy: callPolicy(this.#supervisor.policy, options) };
  }

  /** Runs a call on one of this proxy's open images; argument errors become rejections. */
  async #withImage<T>(image: OpenedImage, options: CallOptions & PolicyOptions, run: (call: CallContext) => Promise<T>): Promise<T> {
    checkOwner(image, this);
    const call = this.#call(options);
    image.wireId();
    return run(call);
  }
}
