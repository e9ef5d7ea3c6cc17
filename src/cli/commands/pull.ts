import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Descriptor, ImageManifest } from '../../index.js';
import { integer, parseCommand, UsageError } from '../options.js';
import { createProgress } from '../progress.js';
import { forEachConcurrently, transferWithRetry, withImage, writeAtomically } from '../session.js';

export const help = `Usage: containers-image-proxy pull IMAGE DIR [--tag T] [--jobs N]
       containers-image-proxy pull IMAGE --to-devnull [--jobs N]

Writes IMAGE as an OCI image layout in DIR (created if needed; an existing
layout gains the image), tagged T (default: the tag of IMAGE, else latest).
Every blob is verified before it is renamed into place.

Options:
  --tag T          the tag in DIR's index.json
  --jobs N         fetch N blobs at a time (default 3)
  --to-devnull     fetch and verify every layer, write nothing

Examples:
  containers-image-proxy pull docker://quay.io/fedora/fedora:42 ./fedora
  skopeo inspect oci:./fedora:42
  containers-image-proxy pull docker://quay.io/fedora/fedora:42 --to-devnull --jobs 4`;

export async function run(args: string[]): Promise<void> {
  const { values, positionals } = parseCommand(args, {
    tag: { type: 'string' },
    jobs: { type: 'string' },
    'to-devnull': { type: 'boolean' },
  });
  const [reference, dir, ...extra] = positionals;
  const toDevNull = values['to-devnull'] === true;
  if (!reference || extra.length || (dir === undefined) === !toDevNull) {
    throw new UsageError('pull takes IMAGE and DIR, or IMAGE and --to-devnull');
  }
  const jobs = integer('--jobs', values.jobs as string | undefined, 3);
  if (jobs < 1) throw new UsageError('--jobs must be at least 1');
  const tag = (values.tag as string | undefined) ?? tagOf(reference);

  await withImage(values, reference, async (proxy, image) => {
    const { raw } = await proxy.fetchManifestRaw(image);
    const manifest = JSON.parse(raw.toString('utf8')) as ImageManifest;
    const blobs: Descriptor[] = toDevNull ? manifest.layers : [manifest.config, ...manifest.layers];
    const progress = createProgress({ quiet: values.quiet, json: values.json });
    try {
      await forEachConcurrently(blobs, jobs, async (descriptor) => {
        const path = dir === undefined ? undefined : blobPath(dir, descriptor.digest);
        if (path && existsSync(path)) return; // blobs are content-addressed: already there and verified
        progress.start(descriptor.digest, descriptor.digest.slice(0, 19), descriptor.size);
        await transferWithRetry(values, progress, descriptor.digest, async () => {
          const stream = await proxy.getDescriptor(image, descriptor);
          if (path) await writeAtomically(path, stream, progress.meter(descriptor.digest));
          else await pipeline(stream, progress.meter(descriptor.digest), new Writable({ write: (_chunk, _encoding, done) => done() }));
        });
        progress.done(descriptor.digest);
      });
    } finally {
      progress.close();
    }
    if (dir !== undefined) await writeLayout(dir, raw, manifest, tag);
  });
}

function blobPath(dir: string, digest: string): string {
  const [algorithm, hex] = digest.split(':');
  if (!algorithm || !hex || !/^[a-f0-9]+$/.test(hex)) throw new Error(`the manifest names an invalid digest ${JSON.stringify(digest)}`);
  return join(dir, 'blobs', algorithm, hex);
}

/** Stores the manifest and points index.json's `tag` at it. */
async function writeLayout(dir: string, raw: Buffer, manifest: ImageManifest, tag: string): Promise<void> {
  const digest = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(blobPath(dir, digest), raw);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const indexPath = join(dir, 'index.json');
  const index = existsSync(indexPath)
    ? (JSON.parse(await readFile(indexPath, 'utf8')) as { manifests?: Descriptor[] })
    : { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] };
  const refName = 'org.opencontainers.image.ref.name';
  index.manifests = (index.manifests ?? []).filter((entry) => entry.annotations?.[refName] !== tag);
  index.manifests.push({
    mediaType: manifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json',
    digest,
    size: raw.length,
    annotations: { [refName]: tag },
  });
  await writeFile(`${indexPath}.tmp`, JSON.stringify(index, null, 2));
  await rename(`${indexPath}.tmp`, indexPath);
}

/** The tag of a reference like `docker://host/repo:tag` or `oci:dir:tag`, else `latest`. */
export function tagOf(reference: string): string {
  const docker = /^docker:\/\/[^@]*?:([\w][\w.-]{0,127})$/.exec(reference);
  if (docker && !docker[1]!.includes('/')) return docker[1]!;
  const layout = /^(?:oci|oci-archive):[^:]+:([\w][\w.-]{0,127})$/.exec(reference);
  return layout?.[1] ?? 'latest';
}
