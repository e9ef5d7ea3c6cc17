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

export const GLOBAL_HELP = `Global options (before or after the command):
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

/** How a command declares its options: parseArgs's option config, string or boolean. */
export type OptionsConfig = Readonly<Record<string, Readonly<{ type: 'string' | 'boolean'; short?: string; multiple?: boolean }>>>;

/** The value parseArgs gives an option of this config: boolean, string, or string[] with `multiple: true`. */
type OptionValue<C> = C extends { type: 'boolean' } ? (C extends { multiple: true } ? boolean[] : boolean) : C extends { multiple: true } ? string[] : string;

/** The parsed values of a set of options, each undefined when not given. */
export type OptionValues<O extends OptionsConfig> = { -readonly [K in keyof O]?: OptionValue<O[K]> };

export type GlobalValues = OptionValues<typeof GLOBAL_OPTIONS>;

/**
 * Parses a command's arguments together with the global options. The values
 * keep their types: `{ size: { type: 'string' } }` gives `values.size` as
 * `string | undefined`, `multiple: true` a `string[]`.
 */
export function parseCommand<const O extends OptionsConfig>(args: string[], options: O): { values: GlobalValues & OptionValues<O>; positionals: string[] } {
  try {
    const parsed = parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...options } as ParseArgsConfig['options'], allowPositionals: true, strict: true });
    // parseArgs types the merged config's values only loosely; OptionValues is what it returns for it.
    return { values: parsed.values as GlobalValues & OptionValues<O>, positionals: parsed.positionals };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * Splits the global options that come before the command off the command
 * line (`--tls-verify=false inspect IMAGE`, as skopeo and podman take them).
 * `leading` are those options, to be parsed with the command's; `help` and
 * `version` are set when --help/-h or --version came before the command.
 */
export function splitLeadingOptions(argv: string[]): { leading: string[]; command: string | undefined; rest: string[]; help: boolean; version: boolean } {
  const leading: string[] = [];
  let help = false;
  let version = false;
  let at = 0;
  for (; at < argv.length; at++) {
    const arg = argv[at]!;
    if (arg === '--' || !arg.startsWith('-') || arg === '-') break;
    if (arg === '--version') {
      version = true;
      continue;
    }
    const shorts = !arg.startsWith('--') ? [...arg.slice(1)] : null;
    const names = shorts ? shorts.map((short) => globalByShort(short) ?? `-${short}`) : [arg.slice(2).split('=')[0]!];
    for (const name of names) {
      const option = (GLOBAL_OPTIONS as OptionsConfig)[name];
      if (!option) throw new UsageError(`unknown global option ${name.startsWith('-') ? name : `--${name}`} (a command's own options go after it)`);
      if (name === 'help') help = true;
    }
    leading.push(arg);
    // A string option's value may be the next argument: `--authfile PATH`.
    if (!shorts && !arg.includes('=') && (GLOBAL_OPTIONS as OptionsConfig)[names[0]!]!.type === 'string') {
      if (at + 1 >= argv.length) throw new UsageError(`${arg} needs a value`);
      leading.push(argv[++at]!);
    }
  }
  return { leading: leading.filter((arg) => arg !== '--help' && arg !== '-h'), command: argv[at] === '--' ? undefined : argv[at], rest: argv.slice(at + 1), help, version };
}

function globalByShort(short: string): string | undefined {
  return Object.entries(GLOBAL_OPTIONS as OptionsConfig).find(([, option]) => option.short === short)?.[0];
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
