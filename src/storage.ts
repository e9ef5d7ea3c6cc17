/**
 * `containers-storage:` references (podman's, buildah's and CRI-O's local
 * store): the store specifier, and what to tell a person when the store says
 * no. A reference is `containers-storage:[DRIVER@ROOT+RUNROOT:OPTIONS]NAME`,
 * every part of the bracket optional; without it, the default store of
 * storage.conf is used (for root: overlay in /var/lib/containers/storage).
 */

import type { ConvertedLayerInfo, Descriptor } from './oci.js';
import { UNKNOWN_SIZE } from './protocol.js';

export const STORAGE_TRANSPORT = 'containers-storage:';

/** The media type of the uncompressed layers a store serves. */
export const UNCOMPRESSED_LAYER = 'application/vnd.oci.image.layer.v1.tar';

/** A `containers-storage:` reference, split as containers/image splits it. */
export interface StorageReference {
  driver?: string;
  root?: string;
  runroot?: string;
  options?: string;
  /** What follows the bracket: `NAME:TAG`, `NAME@DIGEST`, an image ID. */
  image: string;
}

export function isStorageReference(reference: string): boolean {
  return reference.startsWith(STORAGE_TRANSPORT);
}

/**
 * Splits a `containers-storage:` reference the way containers/image does
 * (`[driver@` first, then `:options` from the end, then `+runroot`); the
 * reference itself is passed to skopeo unchanged. `undefined` for another
 * transport or an unclosed bracket.
 */
export function parseStorageReference(reference: string): StorageReference | undefined {
  if (!isStorageReference(reference)) return undefined;
  const rest = reference.slice(STORAGE_TRANSPORT.length);
  if (!rest.startsWith('[')) return { image: rest };
  const close = rest.indexOf(']');
  if (close < 0) return undefined;
  let spec = rest.slice(1, close);
  const parsed: StorageReference = { image: rest.slice(close + 1) };
  const at = spec.indexOf('@');
  if (at >= 0) {
    parsed.driver = spec.slice(0, at);
    spec = spec.slice(at + 1);
  }
  const colon = spec.indexOf(':');
  if (colon >= 0) {
    parsed.options = spec.slice(colon + 1);
    spec = spec.slice(0, colon);
  }
  const plus = spec.indexOf('+');
  if (plus >= 0) {
    parsed.runroot = spec.slice(plus + 1);
    spec = spec.slice(0, plus);
  }
  if (spec !== '') parsed.root = spec;
  return parsed;
}

/**
 * For an image a store does not hold: the store that was searched, and how
 * to name another one. `undefined` for other transports.
 */
export function storeNotFoundHint(reference: string): string | undefined {
  const parsed = parseStorageReference(reference);
  if (!parsed) return undefined;
  const searched = parsed.root
    ? `the ${parsed.driver ? `${parsed.driver} ` : ''}store at ${parsed.root}`
    : `the default store${parsed.driver ? ` with the ${parsed.driver} driver` : ''} (from storage.conf: /var/lib/containers/storage as root, ~/.local/share/containers/storage rootless)`;
  const other = parsed.driver === 'vfs' ? 'overlay' : 'vfs';
  const example = `${STORAGE_TRANSPORT}[${other}@${parsed.root ?? 'ROOT'}+${parsed.runroot ?? 'RUNROOT'}]${parsed.image}`;
  return (
    `the image may be in another store or storage driver: ${searched} does not have it. ` +
    `A store's images are found only through the driver that wrote them (an image pulled with ` +
    `"podman --storage-driver vfs" is not found through the default overlay driver), and each user has a store of their own. ` +
    `Name the store in the reference, e.g. ${example} ` +
    `("podman info --format '{{.Store.GraphDriverName}}@{{.Store.GraphRoot}}+{{.Store.RunRoot}}'" prints a store's)`
  );
}

/** For a blob a store cannot serve: it keeps layers uncompressed, under their diff_ids. */
export const STORE_BLOB_HINT =
  'containers-storage keeps layers uncompressed and serves them under their diff_ids, not the compressed digests ' +
  'its manifest names: fetch the blobs getLayerInfo() (CLI: layers) lists';

/**
 * The blobs a store serves, for a proxy without GetLayerInfo (before 0.2.5):
 * it keeps each layer uncompressed, under its diff_id, and no call before
 * 0.2.5 reports those sizes, so they are -1 (unknown; `getBlob` learns them).
 * A layer the manifest already names by its diff_id (an image built locally,
 * e.g. by buildah, stores what its manifest describes) keeps the manifest's
 * descriptor, size included.
 */
export function storeLayers(manifestLayers: readonly Descriptor[], diffIds: readonly string[]): ConvertedLayerInfo[] {
  return diffIds.map((diffId, i) => {
    const layer = manifestLayers[i];
    if (layer?.digest === diffId) return { digest: layer.digest, size: layer.size, mediaType: layer.mediaType };
    return { digest: diffId, size: UNKNOWN_SIZE, mediaType: UNCOMPRESSED_LAYER };
  });
}
