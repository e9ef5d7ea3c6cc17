import { parseCommand, UsageError } from '../options.js';
import { withImage, writeStdout } from '../session.js';

export const help = `Usage: containers-image-proxy inspect IMAGE [--config] [--raw]

Prints the image's manifest (converted to OCI) and its digest as JSON:
{ "digest", "manifest", "config"? }. The digest is that of the ORIGINAL
manifest, or of the manifest list when IMAGE names one.

Options:
  --config    include the image configuration
  --raw       print the manifest bytes exactly as the proxy returns them

Examples:
  containers-image-proxy inspect docker://quay.io/fedora/fedora:42 --config
  containers-image-proxy inspect oci:examples/hello-image:latest --raw | sha256sum`;

export async function run(args: string[]): Promise<void> {
  const { values, positionals } = parseCommand(args, { config: { type: 'boolean' }, raw: { type: 'boolean' } });
  const [reference, ...extra] = positionals;
  if (!reference || extra.length) throw new UsageError('inspect takes exactly one IMAGE');
  if (values.raw && values.config) throw new UsageError('--raw and --config cannot be combined');
  await withImage(values, reference, async (proxy, image) => {
    if (values.raw) {
      await writeStdout((await proxy.fetchManifestRaw(image)).raw);
      return;
    }
    const { digest, manifest } = await proxy.fetchManifest(image);
    const config = values.config ? await proxy.fetchConfig(image) : undefined;
    await writeStdout(JSON.stringify({ digest, manifest, ...(config ? { config } : {}) }, null, 2) + '\n');
  });
}
