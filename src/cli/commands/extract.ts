import { DEFAULT_JOBS, extractImage, InvalidArgumentError } from '../../index.js';
import { integer, parseCommand, proxyConfig, retryPolicy, UsageError } from '../options.js';
import { createImageProgress } from '../progress.js';

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
then incomplete. A state file beside DIR (.DIR.extract-state.json) records
each layer applied: extracting the same image into DIR again does nothing,
and after an interruption it carries on from the last whole layer.

Options:
  --layer N|DIGEST          extract only this layer (0-based index or digest); repeatable
  --jobs N                  fetch N layers at a time (default 4); they are applied in order,
                            and those that arrive early wait as files in --spool-dir
  --spool-dir DIR           where early layers wait (default: beside DIR)
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
    jobs: { type: 'string' },
    'spool-dir': { type: 'string' },
    'allow-non-empty': { type: 'boolean' },
    'max-uncompressed': { type: 'string' },
  });
  const [reference, dir, ...extra] = positionals;
  if (!reference || !dir || extra.length) throw new UsageError('extract takes IMAGE and DIR');
  const jobs = integer('--jobs', values.jobs, DEFAULT_JOBS);
  if (jobs < 1) throw new UsageError('--jobs must be at least 1');
  const layers = values.layer?.map((selector) => (/^\d+$/.test(selector) ? Number(selector) : selector));
  const maxUncompressed = values['max-uncompressed'];
  const progress = createImageProgress({ quiet: values.quiet, json: values.json });
  try {
    const extracted = await extractImage(proxyConfig(values), reference, dir, {
      jobs,
      retry: retryPolicy(values),
      onProgress: progress.onProgress,
      ...(layers && { layers }),
      ...(values['spool-dir'] !== undefined && { spoolDir: values['spool-dir'] }),
      allowNonEmpty: values['allow-non-empty'] === true,
      ...(maxUncompressed !== undefined && { maxUncompressedBytes: integer('--max-uncompressed', maxUncompressed, 0) }),
    });
    for (const { name, entries, reason } of extracted.report.skippedXattrs) {
      process.stderr.write(`extract: warning: xattr ${name} not applied to ${entries} entr${entries === 1 ? 'y' : 'ies'}: ${reason}\n`);
    }
  } catch (error) {
    // A selector naming no layer is a mistake on the command line.
    if (error instanceof InvalidArgumentError && error.message.startsWith('layer ')) throw new UsageError(`--${error.message}`);
    throw error;
  } finally {
    progress.close();
  }
}
