/** Command-line options shared by every command, mapped onto ImageProxyConfig. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { ImageProxyConfig, RetryPolicy } from '../index.js';

/** A mistake in how the command was called: exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export const GLOBAL_OPTIONS = {
  authfile: { type: 'string' },
  'no-creds': { type: 'boolean' },
  'cert-dir': { type: 'string' },
  'tls-verify': { type: 'string' },
  'registries-conf': { type: 'string' },
  policy: { type: 'string' },
  'override-arch': { type: 'string' },
  'override-os': { type: 'string' },
  'override-variant': { type: 'string' },
  skopeo: { type: 'string' },
  tmpdir: { type: 'string' },
  'stall-timeout': { type: 'string' },
  retry: { type: 'string' },
  debug: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const GLOBAL_HELP = `Global options:
  --authfile PATH           containers-auth.json to use
  --no-creds                access registries anonymously
  --cert-dir DIR            certificates (*.crt, *.cert, *.key) for registry TLS
  --tls-verify=false        allow plain HTTP and unverified HTTPS
  --registries-conf PATH    containers-registries.conf to use
  --policy PATH             containers-policy.json to use
  --override-arch ARCH      pick ARCH from manifest lists (also --override-os, --override-variant)
  --skopeo PATH             the skopeo executable to run (default: $SKOPEO, else skopeo)
  --tmpdir DIR              skopeo's directory for temporary files (default: $TMPDIR, else /var/tmp)
  --stall-timeout SECONDS   fail a blob that receives nothing for this long (default 60)
  --retry N                 retry a blob up to N times after a stall, reset or 5xx (default 0)
  --debug                   skopeo debug output on stderr
  -q, --quiet               no progress output
  --json                    progress as JSON lines on stderr
  -h, --help                this help`;

export type GlobalValues = {
  [K in keyof typeof GLOBAL_OPTIONS]?: (typeof GLOBAL_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string;
};

/** Parses a command's arguments together with the global options. */
export function parseCommand<O extends ParseArgsConfig['options']>(
  args: string[],
  options: O,
): { values: GlobalValues & Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const parsed = parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
    return { values: parsed.values as GlobalValues & Record<string, string | boolean | string[] | undefined>, positionals: parsed.positionals };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Turns the global options into an ImageProxyConfig. */
export function proxyConfig(values: GlobalValues): ImageProxyConfig {
  const config: ImageProxyConfig = {};
  if (values.authfile !== undefined) config.authFile = values.authfile;
  if (values['no-creds']) config.authAnonymous = true;
  if (values['cert-dir'] !== undefined) config.certificateDirectory = values['cert-dir'];
  if (values['tls-verify'] !== undefined) {
    if (values['tls-verify'] !== 'true' && values['tls-verify'] !== 'false') throw new UsageError('--tls-verify takes true or false');
    config.insecureSkipTlsVerification = values['tls-verify'] === 'false';
  }
  if (values['registries-conf'] !== undefined) config.registriesConf = values['registries-conf'];
  if (values.policy !== undefined) config.policy = values.policy;
  const platform = { os: values['override-os'], architecture: values['override-arch'], variant: values['override-variant'] };
  if (platform.os ?? platform.architecture ?? platform.variant) {
    config.platform = Object.fromEntries(Object.entries(platform).filter(([, v]) => v !== undefined));
  }
  const skopeo = values.skopeo ?? process.env.SKOPEO;
  if (skopeo) config.skopeoCommand = [skopeo];
  if (values.tmpdir !== undefined) config.tmpDir = values.tmpdir;
  if (values.debug) config.debug = true;
  if (values['stall-timeout'] !== undefined) config.stallTimeout = integer('--stall-timeout', values['stall-timeout'], 60) * 1000;
  return config;
}

/** The --retry policy: N retries after the first attempt. */
export function retryPolicy(values: GlobalValues): RetryPolicy {
  return { attempts: integer('--retry', values.retry, 0) + 1, backoff: 1000 };
}

/** Parses a non-negative integer option. */
export function integer(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`${name} takes a non-negative integer, got ${JSON.stringify(value)}`);
  return Number(value);
}
