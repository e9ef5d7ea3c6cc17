/**
 * What every scenario receives and returns, and the fixture set they share.
 */
import type { BenchOptions, Release } from './options.js';
import { FixtureLayout, MiB, type ImageFixture } from './fixtures.js';

/** One goal from the issue, checked against a measured number. */
export interface Goal {
  scenario: string;
  goal: string;
  result: string;
  met: boolean;
}

/** A scenario's part of the report. */
export interface Section {
  title: string;
  /** Markdown: tables and short notes. */
  body: string;
  goals: Goal[];
}

export interface Context {
  options: BenchOptions;
  releases: Release[];
  fixtures: Fixtures;
  pythonAvailable: boolean;
  /** A progress line on stderr (stdout carries only the Markdown). */
  progress(text: string): void;
}

export type Scenario = (context: Context) => Promise<Section>;

/**
 * The images the scenarios stream, all in one cached layout:
 *  - `blob-<N>m`: one uncompressed layer of N MiB (scenario 1, 4, 6 share sizes);
 *  - `layers-<K>x<N>m`: K distinct layers of N MiB (scenario 3);
 *  - `meta`: a small image for metadata round trips (scenarios 2 and 6).
 */
export class Fixtures {
  readonly #layout: FixtureLayout;

  constructor(cacheDir: string) {
    this.#layout = new FixtureLayout(cacheDir);
  }

  get generatedBytes(): number {
    return this.#layout.generatedBytes;
  }

  get generatedSeconds(): number {
    return this.#layout.generatedSeconds;
  }

  blob(mib: number): ImageFixture {
    return this.#layout.ensureImage(`blob-${mib}m`, [{ seed: `noise-${mib}m`, bytes: mib * MiB }]);
  }

  layers(count: number, mib: number): ImageFixture {
    const specs = Array.from({ length: count }, (_, i) => ({ seed: `layer-${i}-${mib}m`, bytes: mib * MiB }));
    return this.#layout.ensureImage(`layers-${count}x${mib}m`, specs);
  }

  meta(): ImageFixture {
    return this.#layout.ensureImage('meta', [
      { seed: 'meta-0', bytes: 64 * 1024 },
      { seed: 'meta-1', bytes: 16 * 1024 },
    ]);
  }
}

/** Scenario 4's whole images: the memory sizes split into this many layers. */
export const MEMORY_IMAGE_LAYERS = 4;

/** Builds (or finds in the cache) every fixture the selected scenarios need, before anything is timed. */
export function prepareFixtures(fixtures: Fixtures, options: BenchOptions): void {
  const { only } = options;
  if (only.has('streaming')) fixtures.blob(options.blobMiB);
  if (only.has('metadata') || only.has('scaling')) fixtures.meta();
  if (only.has('concurrency')) fixtures.layers(options.layerCount, options.layerMiB);
  if (only.has('pull')) fixtures.layers(4, options.pullLayerMiB);
  if (only.has('extract')) fixtures.layers(3, options.extractLayerMiB);
  if (only.has('serve')) fixtures.layers(4, options.serveLayerMiB);
  if (only.has('memory')) {
    for (const mib of options.memoryMiB) {
      if (options.memoryRows.has('blobs')) fixtures.blob(mib);
      if (options.memoryRows.has('images')) fixtures.layers(MEMORY_IMAGE_LAYERS, mib / MEMORY_IMAGE_LAYERS);
    }
  }
  if (only.has('scaling')) for (const mib of options.scalingMiB) fixtures.blob(mib);
}

export function onlyLayer(image: ImageFixture): ImageFixture['layers'][number] {
  const layer = image.layers[0];
  if (!layer || image.layers.length !== 1) throw new Error(`${image.tag}: expected exactly one layer`);
  return layer;
}

/** A short label for a size: `16 MiB`, `1 GiB`. */
export function sizeLabel(mib: number): string {
  return mib >= 1024 && mib % 1024 === 0 ? `${mib / 1024} GiB` : `${mib} MiB`;
}
