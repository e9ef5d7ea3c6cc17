/**
 * The image's documents: its manifest, its config and the layers the proxy
 * serves, each read whole from a pipe.
 */
import { ProtocolError } from './errors.js';
import { requestOptions, type CallContext, type OpenedImage } from './images.js';
import type { ConvertedLayerInfo, ImageConfig, ImageManifest } from './oci.js';
import { expectSize, expectString } from './protocol.js';
import { isStorageReference, storeLayers } from './storage.js';
import type { Supervisor } from './supervisor.js';

/** The manifest (converted to OCI) as bytes, and the digest of the manifest as stored. */
export async function fetchManifestRaw(supervisor: Supervisor, image: OpenedImage, call: CallContext): Promise<{ digest: string; raw: Buffer }> {
  const pipe = await supervisor.call('GetManifest', () => [image.wireId()], 'pipe', requestOptions(call));
  const digest = expectString('GetManifest', pipe.value);
  return { digest, raw: await pipe.readAll('manifest', call.signal) };
}

export function parseManifest(raw: Buffer): ImageManifest {
  const manifest = parseJson<ImageManifest>('GetManifest', raw);
  if (!Array.isArray(manifest?.layers) || typeof manifest.config?.digest !== 'string') {
    throw new ProtocolError('GetManifest: the manifest has no "config" and "layers"');
  }
  return manifest;
}

export async function fetchConfigRaw(supervisor: Supervisor, image: OpenedImage, call: CallContext): Promise<Buffer> {
  const pipe = await supervisor.call('GetFullConfig', () => [image.wireId()], 'pipe', requestOptions(call));
  return pipe.readAll('config', call.signal);
}

export function parseConfig(raw: Buffer): ImageConfig {
  return parseJson<ImageConfig>('GetFullConfig', raw);
}

/**
 * The blobs getBlob can serve, in layer order, and the config when it had to
 * be fetched for them: GetLayerInfoPiped (0.2.7), GetLayerInfo (0.2.5), else
 * the manifest's layers, or for `containers-storage:` the config's diff_ids.
 */
export async function servedLayers(
  supervisor: Supervisor,
  image: OpenedImage,
  call: CallContext,
): Promise<{ layers: ConvertedLayerInfo[]; config?: ImageConfig }> {
  const id = (): [number] => [image.wireId()];
  if (supervisor.supports('GetLayerInfoPiped')) {
    const pipe = await supervisor.call('GetLayerInfoPiped', id, 'pipe', requestOptions(call));
    const raw = await pipe.readAll('layer info', call.signal);
    return { layers: parseLayerInfo('GetLayerInfoPiped', parseJson<unknown>('GetLayerInfoPiped', raw)) };
  }
  if (supervisor.supports('GetLayerInfo')) {
    const reply = await supervisor.call('GetLayerInfo', id, 'plain', requestOptions(call));
    return { layers: parseLayerInfo('GetLayerInfo', reply.value) };
  }
  const manifest = parseManifest((await fetchManifestRaw(supervisor, image, call)).raw);
  if (!isStorageReference(image.reference)) {
    return { layers: manifest.layers.map(({ digest, size, mediaType }) => ({ digest, size, mediaType })) };
  }
  // The store serves what it keeps, the uncompressed layers, and not the
  // compressed blobs the manifest (as pulled) names.
  const config = parseConfig(await fetchConfigRaw(supervisor, image, call));
  return { layers: storeLayers(manifest.layers, config.rootfs?.diff_ids ?? []), config };
}

/** A layer and the digest of its uncompressed contents. */
export interface LayerWithDiffId extends ConvertedLayerInfo {
  /** The digest of the layer's uncompressed contents (the config's `rootfs.diff_ids` entry). */
  diffId: string;
}

/** {@link servedLayers}, each with its diff_id from the config. */
export async function layerDiffIds(supervisor: Supervisor, image: OpenedImage, call: CallContext): Promise<LayerWithDiffId[]> {
  const served = await servedLayers(supervisor, image, call);
  const config = served.config ?? parseConfig(await fetchConfigRaw(supervisor, image, call));
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== served.layers.length) {
    throw new ProtocolError(`the image has ${served.layers.length} layers but its config lists ${diffIds.length} diff_ids`);
  }
  return served.layers.map((layer, i) => ({ ...layer, diffId: diffIds[i]! }));
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
