import { RootfsWriter, type LayerWithDiffId } from '../../index.js';
import { integer, parseCommand, UsageError } from '../options.js';
import { createProgress } from '../progress.js';
import { transferWithRetry, withImage } from '../session.js';

export const help = `Usage: containers-image-proxy extract IMAGE DIR [--layer N | --layer DIGEST ...]

Streams the image's layers from the proxy straight into DIR (created if
needed, and empty unless --allow-non-empty) and applies them in order, as
container runtimes do: gzip, zstd and plain tar layers, OCI whiteouts, files
(sparse ones with their holes), directories, symlinks, hardlinks, fifos,
devices (as root), modes with setuid/setgid/sticky bits, times to the
nanosecond, xattrs and file capabilities (as root; otherwise only user.*,
and the others are listed on stderr), ownership (as root), and names as
their exact bytes. Symlinks on an entry's path are followed inside DIR, as
if DIR were "/". Each layer's uncompressed digest is checked against the
config's diff_ids. Entries that climb out (absolute names, ".."), hardlinks
to outside, and device nodes when not root are refused with an error; DIR is
then incomplete.

Options:
  --layer N|DIGEST          extract only this layer (0-based index or digest); repeatable
  --allow-non-empty         extract into a DIR that has content: the image's
                            whiteouts may then delete files that are not the image's
  --max-uncompressed BYTES  fail once the layers' uncompressed size passes BYTES
                            (a guard against decompression bombs)

Examples:
  containers-image-proxy extract oci:examples/hello-image:latest ./rootfs
  containers-image-proxy extract docker://registry.example.com/packages:1.2 ./pkgs --layer 2`;

export async function run(args: string[]): Promise<void> {
  const { values, positionals } = parseCommand(args, {
    layer: { type: 'string', multiple: true },
    'allow-non-empty': { type: 'boolean' },
    'max-uncompressed': { type: 'string' },
  });
  const [reference, dir, ...extra] = positionals;
  if (!reference || !dir || extra.length) throw new UsageError('extract takes IMAGE and DIR');
  const wanted = values.layer ?? [];
  await withImage(values, reference, async (proxy, image) => {
    const layers = selectLayers(await proxy.getLayerDiffIds(image), wanted);
    const maxUncompressed = values['max-uncompressed'];
    const writer = new RootfsWriter(dir, {
      allowNonEmpty: values['allow-non-empty'] === true,
      ...(maxUncompressed !== undefined && { maxUncompressedBytes: integer('--max-uncompressed', maxUncompressed, 0) }),
    });
    const progress = createProgress({ quiet: values.quiet, json: values.json });
    try {
      for (const layer of layers) {
        progress.start(layer.digest, layer.digest.slice(0, 19), layer.size);
        // A retried layer is applied again from its start: entries are replaced, whiteouts idempotent.
        await transferWithRetry(values, progress, layer.digest, async () => {
          const blob = await proxy.getBlob(image, layer.digest, layer.size);
          await writer.applyLayer(progress.meter(layer.digest)(blob), { diffId: layer.diffId });
        });
        progress.done(layer.digest);
      }
      const report = await writer.finish();
      for (const { name, entries, reason } of report.skippedXattrs) {
        process.stderr.write(`extract: warning: xattr ${name} not applied to ${entries} entr${entries === 1 ? 'y' : 'ies'}: ${reason}\n`);
      }
    } finally {
      progress.close();
    }
  });
}

/** The layers named by --layer (index or digest), in image order; all when none. */
export function selectLayers(layers: LayerWithDiffId[], wanted: string[]): LayerWithDiffId[] {
  if (wanted.length === 0) return layers;
  const chosen = new Set<number>();
  for (const selector of wanted) {
    const index = /^\d+$/.test(selector) ? Number(selector) : layers.findIndex((layer) => layer.digest === selector);
    if (index < 0 || index >= layers.length) {
      throw new UsageError(`--layer ${selector}: the image has ${layers.length} layers (0-${layers.length - 1}) and no such digest`);
    }
    chosen.add(index);
  }
  return layers.filter((_, index) => chosen.has(index));
}
