/**
 * containers-image-proxy: fetch container images as verified streams through
 * `skopeo experimental-image-proxy`.
 *
 * @example
 * ```ts
 * import { ImageProxy } from 'containers-image-proxy';
 * await using proxy = await ImageProxy.spawn();
 * await using image = await proxy.openImage('docker://quay.io/fedora/fedora:42');
 * const { manifest } = await proxy.fetchManifest(image);
 * ```
 */
export {
  DEFAULT_STALL_TIMEOUT_MS,
  ImageProxy,
  OpenedImage,
  type BlobOptions,
  type CallOptions,
  type CloseOptions,
  type LayerWithDiffId,
  type RestartEvent,
} from './proxy.js';
export { isNotFound } from './skopeo-messages.js';
export { isRetryable, withRetry, type RetryEvent, type RetryPolicy } from './retry.js';
export { RootfsWriter, ExtractionError, type ExtractionReport, type RootfsCheckpoint, type RootfsWriterOptions } from './extract/rootfs-writer.js';
export { pullImage, type PulledBlob, type PulledImage, type PullImageOptions } from './pull-image.js';
export { extractImage, type ExtractedImage, type ExtractedLayer, type ExtractImageOptions } from './extract-image.js';
export { DEFAULT_JOBS, type ImageOptions, type ImageSource } from './image-session.js';
export { OciLayoutError } from './oci-layout.js';
export type {
  BlobDoneEvent,
  BlobProgressEvent,
  BlobRetryEvent,
  BlobRole,
  BlobSkippedEvent,
  BlobStartEvent,
  DoneEvent,
  ImageBlob,
  ImageProgressEvent,
  LayerAppliedEvent,
  ProgressOptions,
  ResolvedEvent,
} from './image-events.js';
export type { Credentials, ImageProxyConfig, Platform } from './config.js';
export type { BlobStream, BlobTransfer } from './blobs/index.js';
export type { PolicyOptions } from './policy.js';
export { classifyMessage, type FailureKind } from './skopeo-messages.js';
export { FEATURE_VERSIONS, MINIMUM_PROTOCOL_VERSION, UNKNOWN_SIZE, type Feature } from './protocol.js';
export * from './errors.js';
export { MediaType, type ConvertedLayerInfo, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from './oci.js';
export {
  createRegistryServer,
  formatRequestLog,
  parseCredentials,
  parseMapping,
  RegistryServer,
  type BasicCredentials,
  type RegistryCloseOptions,
  type RegistryServerOptions,
  type RepositoryMapping,
  type RequestLogEntry,
} from './serve/server.js';
