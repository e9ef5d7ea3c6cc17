import { pipeline } from 'node:stream/promises';
import { parseCommand, integer, UsageError } from '../options.js';
import { createProgress } from '../progress.js';
import { outputTarget, transferWithRetry, withImage, writeOutput } from '../session.js';

export const help = `Usage: containers-image-proxy blob IMAGE DIGEST [--size N] [-o FILE]

Writes one verified blob (a layer or the config) to stdout or FILE. The size
is looked up in the manifest, then in the blobs the proxy serves, when --size
is not given (for containers-storage: on protocol 0.2.3 the proxy tells it
as the blob is sent). If the bytes do not match DIGEST the command fails and
FILE is not created. containers-storage: keeps layers uncompressed: fetch
the digests "layers" lists (the diff_ids), not the manifest's.

FILE may be a new name or a regular file: the blob goes to a temporary name
beside it and is renamed over it once verified (a replaced file keeps its
mode). An existing FIFO or character device (e.g. /dev/null) is written
directly and stays what it is; bytes written before a failure stay written,
and there is no retry. A symlink is followed and its target treated the same
way. A directory, block device, socket or dangling symlink is refused (exit 2).

Options:
  --size N         the blob's size in bytes
  -o, --output F   write to F instead of stdout

Examples:
  containers-image-proxy blob oci:examples/hello-image:latest sha256:68a96e7f… -o layer.tar
  containers-image-proxy blob docker://quay.io/fedora/fedora:42 sha256:… | tar -tzf -`;

export async function run(args: string[]): Promise<void> {
  const { values, positionals } = parseCommand(args, { size: { type: 'string' }, output: { type: 'string', short: 'o' } });
  const [reference, digest, ...extra] = positionals;
  if (!reference || !digest || extra.length) throw new UsageError('blob takes IMAGE and DIGEST');
  const output = values.output;
  // Judged before anything is fetched, so a refused FILE costs no transfer.
  const target = output === undefined ? undefined : await outputTarget(output);
  await withImage(values, reference, async (proxy, image) => {
    let size = values.size === undefined ? undefined : integer('--size', values.size, 0);
    if (size === undefined) {
      const { manifest } = await proxy.fetchManifest(image);
      const find = (descriptors: ReadonlyArray<{ digest: string; size: number }>) => descriptors.find((d) => d.digest === digest)?.size;
      // The layer info differs from the manifest only for containers-storage: ask for it only then.
      size = find([manifest.config, ...manifest.layers]) ?? find(await proxy.getLayerInfo(image));
      if (size === undefined) throw new UsageError(`${digest} is not a layer or the config of this image; pass --size to fetch it anyway`);
    }
    const progress = createProgress({ quiet: values.quiet || !output, json: values.json });
    progress.start(digest, digest.slice(0, 19), size);
    const expected = size;
    if (target?.kind === 'replace') {
      await transferWithRetry(values, progress, digest, async () => writeOutput(target, await proxy.getBlob(image, digest, expected), progress.meter(digest)));
    } else if (target) {
      // Bytes already in a FIFO or device cannot be taken back: no retry here.
      await writeOutput(target, await proxy.getBlob(image, digest, expected), progress.meter(digest));
    } else {
      // Bytes already on stdout cannot be taken back: no retry here.
      await pipeline(await proxy.getBlob(image, digest, size), progress.meter(digest), process.stdout, { end: false });
    }
    progress.done(digest);
    progress.close();
  });
}
