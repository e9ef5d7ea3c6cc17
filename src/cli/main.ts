#!/usr/bin/env node
/**
 * The `containers-image-proxy` command: inspect, layers, blob, pull,
 * extract and serve, built on the library's public API and on its OCI layout module
 * (src/oci-layout.ts, not public yet).
 * Exit codes: 0 success, 1 operational error, 2 usage error.
 */
import { readFileSync } from 'node:fs';
import { ImageProxyError, ProxyExitedError } from '../index.js';
import * as blob from './commands/blob.js';
import * as extract from './commands/extract.js';
import * as inspect from './commands/inspect.js';
import * as layers from './commands/layers.js';
import * as pull from './commands/pull.js';
import * as serve from './commands/serve.js';
import { GLOBAL_HELP, splitLeadingOptions, UsageError } from './options.js';

const PROGRAM = 'containers-image-proxy';
const COMMANDS: Record<string, { help: string; run(args: string[]): Promise<void> }> = { inspect, layers, blob, pull, extract, serve };

const USAGE = `Usage: ${PROGRAM} [GLOBAL OPTIONS] COMMAND [OPTIONS]

Fetch container images through skopeo's image proxy, as verified streams.
IMAGE is any containers/image reference: docker://, oci:, oci-archive:,
dir:, docker-archive:, containers-storage:.

Commands:
  inspect IMAGE            manifest (and config) as JSON
  layers IMAGE             the layers with sizes, media types and diff IDs
  blob IMAGE DIGEST        one verified blob to stdout or a file
  pull IMAGE DIR           the image as an OCI layout in DIR
  extract IMAGE DIR        the image's root filesystem, unpacked into DIR
  serve --map NAME=SOURCE  a read-only OCI registry of the mapped sources

Run '${PROGRAM} COMMAND --help' for a command's options and examples.
Global options go before or after the command: as skopeo and podman take them,
  ${PROGRAM} --tls-verify=false inspect docker://localhost:5000/app:1
or after it, with the command's own options:
  ${PROGRAM} inspect docker://localhost:5000/app:1 --tls-verify=false

${GLOBAL_HELP}
  --version                 print the version`;

function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0) {
    process.stdout.write(USAGE + '\n');
    return 2;
  }
  const { leading, command: name, rest, help, version: wantsVersion } = splitLeadingOptions(argv);
  if (wantsVersion) {
    process.stdout.write(`${PROGRAM} ${version()}\n`);
    return 0;
  }
  if (name === 'help' || (help && name === undefined)) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (name === undefined) throw new UsageError('no command given');
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  if (help || rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.help}\n\n${GLOBAL_HELP}\n`);
    return 0;
  }
  // Global options from before the command are parsed with the command's.
  await command.run([...leading, ...rest]);
  return 0;
}

/** One line a person can act on. */
function describe(error: unknown): string {
  if (error instanceof ProxyExitedError) {
    const last = error.stderr.trim().split('\n').pop() ?? '';
    return `${error.message.split('\n')[0]}${last ? `: ${last}` : ''}`;
  }
  if (error instanceof Error) return error.message.split('\n')[0]!;
  return String(error);
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof UsageError) {
    process.stderr.write(`${PROGRAM}: ${error.message}\nRun '${PROGRAM} --help' for usage.\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`${PROGRAM}: error: ${describe(error)}\n`);
    if (!(error instanceof ImageProxyError) && process.env.CONTAINERS_IMAGE_PROXY_DEBUG) console.error(error);
    process.exitCode = 1;
  }
}
