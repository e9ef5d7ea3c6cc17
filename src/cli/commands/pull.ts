import { DEFAULT_JOBS, pullImage, type PulledImage } from '../../index.js';
import { checkTag } from '../../oci-layout.js';
import { parseStorageReference } from '../../storage.js';
import { integer, parseCommand, proxyConfig, retryPolicy, UsageError, type GlobalValues } from '../options.js';
import { createImageProgress } from '../progress.js';

export const help = `Usage: containers-image-proxy pull IMAGE DIR [--tag T] [--jobs N]
       containers-image-proxy pull IMAGE --to-devnull [--jobs N]

Writes IMAGE as an OCI image layout in DIR (created if needed; an existing
layout gains the image), tagged T (default: the tag of IMAGE, else latest).
Every blob is verified before it is renamed into place. Blobs DIR already
holds (digest checked) are not fetched again, so an interrupted pull is
resumed by running it again.

The manifest written describes exactly the blobs written, so it is a new one
(another digest than the source's) when the proxy converted a Docker
manifest to OCI, when a layer's media type did not name its compression (a
docker-archive: layer is plain tar), or when the source serves other blobs
than its manifest lists (containers-storage:). pull then says so on stderr
(unless --quiet), and in a "manifest" event with --json.

Options:
  --tag T          the tag in DIR's index.json
  --jobs N         fetch N blobs at a time, largest first (default 4)
  --to-devnull     fetch and verify every blob, write nothing

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
  const jobs = integer('--jobs', values.jobs, DEFAULT_JOBS);
  if (jobs < 1) throw new UsageError('--jobs must be at least 1');
  const tag = values.tag ?? tagOf(reference);
  try {
    checkTag(tag);
  } catch (error) {
    throw new UsageError(`--tag: ${(error as Error).message}`);
  }

  const progress = createImageProgress({ quiet: values.quiet, json: values.json });
  let pulled: PulledImage;
  try {
    pulled = await pullImage(proxyConfig(values), reference, dir ?? null, { tag, jobs, retry: retryPolicy(values), onProgress: progress.onProgress });
  } finally {
    progress.close();
  }
  if (dir !== undefined) reportManifest(values, pulled, tag);
}

/** Tells when the manifest written is not the source's: one line, or a JSON event. */
function reportManifest(values: GlobalValues, pulled: PulledImage, tag: string): void {
  const changed = pulled.manifestDigest !== pulled.sourceDigest;
  if (values.json) {
    const { manifestDigest: digest, size, sourceDigest, changes } = pulled;
    process.stderr.write(JSON.stringify({ event: 'manifest', tag, digest, size, sourceDigest, changed, changes }) + '\n');
  } else if (changed && !values.quiet) {
    process.stderr.write(`containers-image-proxy: wrote manifest ${pulled.manifestDigest}, not the source's ${pulled.sourceDigest}: ${pulled.changes.join('; ')}\n`);
  }
}

/**
 * The tag of a reference like `docker://host/repo:tag`, `oci:dir:tag` or
 * `containers-storage:[vfs@ROOT+RUNROOT]host/repo:tag`, else `latest`.
 */
export function tagOf(reference: string): string {
  const docker = /^docker:\/\/[^@]*?:([\w][\w.-]{0,127})$/.exec(reference);
  if (docker && !docker[1]!.includes('/')) return docker[1]!;
  const storage = parseStorageReference(reference);
  if (storage) return /^[^@]*:([\w][\w.-]{0,127})$/.exec(storage.image)?.[1] ?? 'latest';
  const layout = /^(?:oci|oci-archive):[^:]+:([\w][\w.-]{0,127})$/.exec(reference);
  return layout?.[1] ?? 'latest';
}
