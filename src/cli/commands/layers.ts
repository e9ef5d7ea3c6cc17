import { parseCommand, UsageError } from '../options.js';
import { withImage, writeStdout } from '../session.js';

export const help = `Usage: containers-image-proxy layers IMAGE

Prints one JSON entry per layer, in order:
{ "index", "digest", "size", "mediaType", "diffId" }
(diffId: the digest of the uncompressed layer, from the image config).
The digests are the blobs the proxy serves: for containers-storage: the
uncompressed layers, under their diff_ids. "size" is null when the proxy
cannot tell it before the blob is fetched (containers-storage: with skopeo
speaking protocol 0.2.3, e.g. 1.9); blob and extract fetch those anyway.

Example:
  containers-image-proxy layers oci:examples/hello-image:latest`;

export async function run(args: string[]): Promise<void> {
  const { values, positionals } = parseCommand(args, {});
  const [reference, ...extra] = positionals;
  if (!reference || extra.length) throw new UsageError('layers takes exactly one IMAGE');
  await withImage(values, reference, async (proxy, image) => {
    const layers = await proxy.getLayerDiffIds(image);
    const entries = layers.map(({ digest, size, mediaType, diffId }, index) => ({ index, digest, size: size < 0 ? null : size, mediaType, diffId }));
    await writeStdout(JSON.stringify(entries, null, 2) + '\n');
  });
}
