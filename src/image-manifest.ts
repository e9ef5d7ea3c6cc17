/**
 * The manifest that describes exactly the blobs the proxy serves, shared by
 * {@link pullImage} (which writes those blobs into a layout) and the registry
 * server (which serves them to clients that verify every digest):
 *  - the config comes from GetFullConfig, which serves the config of the
 *    manifest the proxy converted to OCI (for a Docker schema 2 source the
 *    converted config is a blob the source does not store);
 *  - the layers are the blobs the source can serve (`getLayerInfo`), which
 *    for `containers-storage:` are not the manifest's but the uncompressed
 *    layers under their diff_ids (on protocol 0.2.3 their sizes are learnt
 *    as they are fetched);
 *  - each layer's media type names the compression its bytes actually have
 *    (a `docker-archive:` layer is plain tar whatever the converted manifest
 *    says).
 * When any of this differs from the source, the manifest is a new one, and
 * `changes` says why.
 */
import type { Compression } from './decompress.js';
import type { OpenedImage } from './images.js';
import { parseManifest } from './metadata.js';
import { MediaType, type ConvertedLayerInfo, type Descriptor, type ImageManifest } from './oci.js';
import { algorithmOf, digestOf, type DigestAlgorithm } from './oci-layout.js';
import { UNKNOWN_SIZE } from './protocol.js';
import type { ImageProxy } from './proxy.js';

/** An opened image's documents, and which blobs describe it consistently. @internal */
export interface ServableImage {
  /** GetManifest's digest: the manifest as the source stores it. */
  sourceDigest: string;
  /** GetManifest's bytes (converted to OCI when the source is not). */
  raw: Buffer;
  manifest: ImageManifest;
  /** Whether the proxy converted the source's manifest (its bytes do not hash to `sourceDigest`). */
  converted: boolean;
  /** The config to describe. */
  config: Descriptor;
  /** GetFullConfig's bytes when they are the config to serve (from memory); null when the source's own blob is. */
  configBytes: Buffer | null;
  /** The layer blobs the source serves, in image order (a size may be {@link UNKNOWN_SIZE}). */
  layers: Descriptor[];
  /** Why the manifest is not the source's so far, one sentence each. */
  changes: string[];
}

/** Reads the manifest, the served layers and the config of `image`, and decides which blobs describe it. @internal */
export async function servableImage(proxy: ImageProxy, image: OpenedImage, signal: AbortSignal | undefined): Promise<ServableImage> {
  const { digest: sourceDigest, raw } = await proxy.fetchManifestRaw(image, { signal });
  const manifest = parseManifest(raw);
  const converted = digestOf(raw, algorithmOf(sourceDigest)) !== sourceDigest;
  const changes = converted ? [`the proxy converted the source's manifest to OCI`] : [];

  const served = servedLayers(manifest.layers, await proxy.getLayerInfo(image, { signal }));
  changes.push(...served.changes);

  // The config: GetFullConfig serves the config of the manifest GetManifest
  // served. It re-serialises the config as OCI, so for a manifest the proxy
  // did not convert it differs from the blob the manifest names whenever that
  // blob is not in Go's own JSON form; that blob is then the source's to serve.
  let config = manifest.config;
  const fullConfig = await proxy.fetchConfigRaw(image, { signal });
  const configMatches = digestOf(fullConfig, algorithmOf(config.digest)) === config.digest && fullConfig.length === config.size;
  const configServed = configMatches || converted;
  if (configServed && !configMatches) {
    const digest = digestOf(fullConfig, 'sha256');
    changes.push(`the proxy serves the config ${digest} (${fullConfig.length} bytes), not ${config.digest} (${config.size} bytes) that the converted manifest names`);
    config = { ...config, digest, size: fullConfig.length };
  }
  return { sourceDigest, raw, manifest, converted, config, configBytes: configServed ? fullConfig : null, layers: served.layers, changes };
}

/**
 * The manifest of `image` with its layers as `layers` (the served blobs with
 * their compression and known sizes): its bytes, digest and changes. The
 * source's own bytes keep the source's digest algorithm; anything new is
 * sha256. @internal
 */
export function consistentManifest(
  image: ServableImage,
  layers: ReadonlyArray<{ descriptor: Descriptor; compression: Compression }>,
): { raw: Buffer; digest: string; manifest: ImageManifest; changes: string[] } {
  const written = writtenManifest(image.raw, image.manifest, image.config, layers);
  const algorithm: DigestAlgorithm = written.raw === image.raw && !image.converted ? algorithmOf(image.sourceDigest) : 'sha256';
  const digest = digestOf(written.raw, algorithm);
  const changes = digest === image.sourceDigest ? [] : [...image.changes, ...written.changes];
  return { raw: written.raw, digest, manifest: written.manifest, changes };
}

/**
 * The layers to copy: the blobs the source serves (GetLayerInfo). Where one
 * is the manifest's layer (same digest and size) the manifest's descriptor is
 * kept; otherwise the served blob replaces it (without the manifest's
 * annotations, which described other bytes). A different number of blobs
 * replaces the manifest's layers altogether.
 */
export function servedLayers(manifestLayers: readonly Descriptor[], served: readonly ConvertedLayerInfo[]): { layers: Descriptor[]; changes: string[] } {
  const fromInfo = (info: ConvertedLayerInfo): Descriptor => ({ mediaType: info.mediaType, digest: info.digest, size: info.size });
  if (served.length !== manifestLayers.length) {
    return {
      layers: served.map(fromInfo),
      changes: [`the source serves ${served.length} layer blobs where its manifest lists ${manifestLayers.length}: those blobs replace the manifest's layers`],
    };
  }
  const changes: string[] = [];
  const layers = manifestLayers.map((layer, i) => {
    const info = served[i]!;
    if (info.digest === layer.digest && (info.size === layer.size || info.size === UNKNOWN_SIZE)) return layer;
    const size = info.size === UNKNOWN_SIZE ? '' : ` (${info.size} bytes)`; // unknown before it is fetched (containers-storage on 0.2.3)
    changes.push(`layer ${i}: the source serves ${info.digest}${size} instead of ${layer.digest} (${layer.size} bytes)`);
    return fromInfo(info);
  });
  return { layers, changes };
}

/** Tar layer media types, by family: OCI, OCI non-distributable, and their Docker counterparts. */
const LAYER_FAMILIES: Array<{ oci: string; names: RegExp }> = [
  { oci: MediaType.Layer, names: /^application\/vnd\.(?:oci\.image\.layer\.v1\.tar(?:\+(?:gzip|zstd))?|docker\.image\.rootfs\.diff\.tar(?:\.(?:gzip|zstd))?)$/ },
  {
    oci: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
    names: /^application\/vnd\.(?:oci\.image\.layer\.nondistributable\.v1\.tar(?:\+(?:gzip|zstd))?|docker\.image\.rootfs\.foreign\.diff\.tar(?:\.(?:gzip|zstd))?)$/,
  },
];

/**
 * The OCI media type for a tar layer declared as `mediaType` whose bytes have
 * `compression`: `application/vnd.oci.image.layer.v1.tar`, `+gzip` or
 * `+zstd` (Docker's types become OCI's, non-distributable stays so). Media
 * types that are not tar layers (artifacts, encrypted layers) are returned
 * unchanged.
 */
export function layerMediaType(mediaType: string, compression: Compression): string {
  const family = LAYER_FAMILIES.find((f) => f.names.test(mediaType));
  if (!family) return mediaType;
  return compression === 'none' ? family.oci : `${family.oci}+${compression}`;
}

const COMPRESSION_WORDS: Record<Compression, string> = { none: 'uncompressed tar', gzip: 'gzip', zstd: 'zstd' };

/**
 * The manifest that describes the blobs written: `config`, and each layer
 * with the media type of its compression. The source's bytes when nothing
 * differs (`raw` itself is returned), else a new serialisation.
 */
export function writtenManifest(
  raw: Buffer,
  manifest: ImageManifest,
  config: Descriptor,
  layers: ReadonlyArray<{ descriptor: Descriptor; compression: Compression }>,
): { raw: Buffer; manifest: ImageManifest; changes: string[] } {
  const changes: string[] = [];
  const described = layers.map(({ descriptor, compression }, i) => {
    const mediaType = layerMediaType(descriptor.mediaType, compression);
    if (mediaType === descriptor.mediaType) return descriptor;
    changes.push(`layer ${i} (${descriptor.digest}) is ${COMPRESSION_WORDS[compression]}: written as ${mediaType}, not ${descriptor.mediaType}`);
    return { ...descriptor, mediaType };
  });
  const same = config === manifest.config && described.length === manifest.layers.length && described.every((layer, i) => layer === manifest.layers[i]);
  if (same) return { raw, manifest, changes };
  const updated: ImageManifest = { ...manifest, config, layers: described };
  return { raw: Buffer.from(JSON.stringify(updated)), manifest: updated, changes };
}
