/**
 * Builds real OCI image layouts (image-spec 1.1) for tests, benchmarks and
 * the bundled example: deterministic layers, config and manifest. Where blobs
 * go and what index.json holds is src/oci-layout.ts's (synchronous here, so
 * fixtures can be made anywhere).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { MediaType, type Descriptor } from '../../src/oci.js';
import { indexWithTag, layoutBlobPath, LAYOUT_MARKER } from '../../src/oci-layout.js';
import { tar, type TarEntry } from './tar.js';

export type Compression = 'none' | 'gzip' | 'zstd';

export interface LayerSpec {
  entries?: TarEntry[];
  /** An already built tar stream instead of entries. */
  tar?: Buffer;
  compression?: Compression;
}

export interface BuiltLayer {
  digest: string;
  size: number;
  diffId: string;
  mediaType: string;
  path: string;
}

export interface BuiltImage {
  layout: string;
  tag: string;
  reference: string;
  manifestDigest: string;
  manifestPath: string;
  configDigest: string;
  configSize: number;
  layers: BuiltLayer[];
}

export function sha256(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

export function blobPath(layout: string, digest: string): string {
  return layoutBlobPath(layout, digest);
}

/** Stores a blob in the layout and returns its digest. */
export function writeBlob(layout: string, data: Buffer): string {
  const digest = sha256(data);
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(blobPath(layout, digest), data);
  return digest;
}

/** Adds a manifest to index.json under a tag (creating the layout). */
export function addToIndex(layout: string, { mediaType = MediaType.ImageManifest, ...descriptor }: Omit<Descriptor, 'mediaType'> & { mediaType?: string | undefined }, tag: string): void {
  mkdirSync(layout, { recursive: true });
  writeFileSync(join(layout, 'oci-layout'), LAYOUT_MARKER);
  const indexPath = join(layout, 'index.json');
  writeFileSync(indexPath, indexWithTag(layout, existsSync(indexPath) ? readFileSync(indexPath, 'utf8') : undefined, { mediaType, ...descriptor }, tag));
}

/**
 * Writes the config, manifest and index.json entry of an image whose layer
 * blobs are already in the layout.
 */
export function writeImage(
  layout: string,
  tag: string,
  layers: ReadonlyArray<{ mediaType: string; digest: string; size: number; diffId: string }>,
  options: { architecture?: string } = {},
): { manifestDigest: string; configDigest: string; configSize: number } {
  const config = Buffer.from(
    JSON.stringify({
      created: '2026-01-01T00:00:00Z',
      architecture: options.architecture ?? 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'], Labels: { 'org.example.tag': tag } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({ created: '2026-01-01T00:00:00Z', created_by: `layer ${i}` })),
    }),
  );
  const configDigest = writeBlob(layout, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
    }),
  );
  const manifestDigest = writeBlob(layout, manifest);
  addToIndex(layout, { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.length }, tag);
  return { manifestDigest, configDigest, configSize: config.length };
}

/** Writes an image with the given layers into an OCI layout at `layout`. */
export function buildImage(layout: string, tag: string, layerSpecs: LayerSpec[], options: { architecture?: string } = {}): BuiltImage {
  const layers: BuiltLayer[] = layerSpecs.map((spec) => {
    const raw = spec.tar ?? tar(spec.entries ?? []);
    const compression = spec.compression ?? 'gzip';
    const blob = compression === 'gzip' ? gzipSync(raw, { level: 1 }) : compression === 'zstd' ? execFileSync('zstd', ['-q', '-c'], { input: raw }) : raw;
    const digest = writeBlob(layout, blob);
    return {
      digest,
      size: blob.length,
      diffId: sha256(raw),
      mediaType: `application/vnd.oci.image.layer.v1.tar${compression === 'none' ? '' : `+${compression}`}`,
      path: blobPath(layout, digest),
    };
  });
  const { manifestDigest, configDigest, configSize } = writeImage(layout, tag, layers, options);
  return {
    layout,
    tag,
    reference: `oci:${layout}:${tag}`,
    manifestDigest,
    manifestPath: blobPath(layout, manifestDigest),
    configDigest,
    configSize,
    layers,
  };
}

/** Deterministic pseudo-random bytes (incompressible, so sizes stay honest). */
export function noise(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(Math.ceil(size / 4) * 4);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out.subarray(0, size);
}
