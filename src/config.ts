/**
 * {@link ImageProxyConfig} and its translation into the skopeo command line.
 * Secrets never go on the command line: they travel in sealed anonymous
 * files the child inherits (see {@link SpawnPlan.secretFiles}).
 */
import { ConfigurationError } from './errors.js';
import type { PolicyOptions } from './policy.js';

/** Which image to pick from a manifest list, instead of the running machine's. */
export interface Platform {
  /** e.g. `linux` (`--override-os`). */
  os?: string;
  /** e.g. `arm64` (`--override-arch`). */
  architecture?: string;
  /** e.g. `v8` (`--override-variant`). */
  variant?: string;
}

/** Registry credentials; see {@link ImageProxyConfig.credentials}. */
export interface Credentials {
  /** The registry they are for: `quay.io`, `localhost:5000`, … */
  registry: string;
  /** The user name. */
  username: string;
  /** The password or token (never put on skopeo's command line). */
  password: string;
}

/** How to run the proxy. Every field is optional. */
/**
 * How to run skopeo, and the default call policy ({@link PolicyOptions}:
 * `replyTimeout`, `bodyIdleTimeout`, their shorthand `stallTimeout`, `retry`).
 */
export interface ImageProxyConfig extends PolicyOptions {
  /** Path of a containers-auth.json file (`--authfile`). Conflicts with `authData` and `authAnonymous`. */
  authFile?: string;
  /**
   * The contents of a containers-auth.json file. It reaches skopeo through an
   * inherited, sealed anonymous file, never argv or a temporary file.
   */
  authData?: string | Uint8Array;
  /** Use no credentials at all, not even the default auth files (`--no-creds`). */
  authAnonymous?: boolean;
  /**
   * A username and password for one registry. They reach skopeo as a private
   * auth file on an inherited fd (an auth file is keyed by registry, hence
   * `registry`, e.g. `quay.io` or `localhost:5000`). Conflicts with the other
   * auth options.
   */
  credentials?: Credentials;
  /** Directory with `*.crt`, `*.cert` and `*.key` files for registry TLS (`--cert-dir`). */
  certificateDirectory?: string;
  /**
   * Keys to decrypt encrypted images (`--decryption-key`). Only skopeo builds
   * whose image proxy has that flag support it; others fail with a
   * {@link ConfigurationError} at spawn.
   */
  decryptionKeys?: readonly string[];
  /** Talk plain HTTP or unverified HTTPS to registries (`--tls-verify=false`). */
  insecureSkipTlsVerification?: boolean;
  /** A containers-registries.conf file to use instead of the system's (`--registries-conf`). */
  registriesConf?: string;
  /** A containers-registries.d directory, e.g. for signature lookaside (`--registries.d`). */
  registriesDir?: string;
  /** A containers-policy.json file (`--policy`). */
  policy?: string;
  /** Skip signature policy checks entirely (`--insecure-policy`). Conflicts with `policy`. */
  insecurePolicy?: boolean;
  /** Which platform to choose from manifest lists. */
  platform?: Platform;
  /** Directory for skopeo's temporary files (`--tmpdir`). */
  tmpDir?: string;
  /** Prefix for the User-Agent header (`--user-agent-prefix`, skopeo 1.14 and later). */
  userAgentPrefix?: string;
  /**
   * Run skopeo with `--debug` and pass its stderr through to ours. Also turned
   * on by the environment variable `CONTAINERS_IMAGE_PROXY_DEBUG`.
   */
  debug?: boolean;
  /**
   * The command that runs skopeo, as an argv prefix: `['/opt/skopeo/bin/skopeo']`
   * or `['systemd-run', '-Pq', '--', 'skopeo']`. Defaults to `['skopeo']`. A
   * single executable is wrapped in `setpriv --pdeathsig SIGTERM` when
   * util-linux has it, so the child dies with us; a longer prefix (a wrapper
   * such as systemd-run) is run as given.
   */
  skopeoCommand?: readonly string[];
}

/** What the installed skopeo supports, learned from its `--help` when a config needs to know. */
export interface SkopeoFeatures {
  userAgentPrefix: boolean;
  decryptionKey: boolean;
}

/** The child's command line and the secrets it inherits. */
export interface SpawnPlan {
  argv: string[];
  /** The program the caller asked for (skopeo, or the first word of skopeoCommand), to check before spawning. */
  program: string;
  /** Secret file contents; the i-th is inherited as fd `3 + i`. */
  secretFiles: Buffer[];
  /** Whether skopeo's stderr is passed through. */
  debug: boolean;
}

/** The first fd number used for inherited secret files. */
export const FIRST_SECRET_FD = 3;

/** Which config fields need a look at `skopeo --help` before spawning. */
export function needsFeatureProbe(config: ImageProxyConfig): boolean {
  return config.userAgentPrefix !== undefined || (config.decryptionKeys?.length ?? 0) > 0;
}

/**
 * Validates a config and turns it into a command line. Pure: everything it
 * depends on is passed in, so every mapping is unit-tested.
 */
export function planSpawn(
  config: ImageProxyConfig,
  environment: { env: NodeJS.ProcessEnv; setpriv: string | null; features?: SkopeoFeatures },
): SpawnPlan {
  checkConflicts(config);
  checkNoNul(config);
  const debug = config.debug === true || nonEmpty(environment.env.CONTAINERS_IMAGE_PROXY_DEBUG);
  const prefix = config.skopeoCommand ?? ['skopeo'];
  if (prefix.length === 0 || prefix.some((part) => typeof part !== 'string' || part === '')) {
    throw new ConfigurationError('skopeoCommand must be a non-empty list of non-empty strings, e.g. ["/usr/bin/skopeo"]');
  }
  // A plain executable (the default, or a private skopeo path) dies with us
  // through setpriv; a wrapper command such as systemd-run manages its own.
  const wrapper = prefix.length === 1 && environment.setpriv ? [environment.setpriv, '--pdeathsig', 'SIGTERM', '--'] : [];

  const global: string[] = [];
  if (debug) global.push('--debug');
  if (config.policy !== undefined) global.push(flag('--policy', path('policy', config.policy)));
  if (config.insecurePolicy) global.push('--insecure-policy');
  if (config.registriesDir !== undefined) global.push(flag('--registries.d', path('registriesDir', config.registriesDir)));
  if (config.registriesConf !== undefined) global.push(flag('--registries-conf', path('registriesConf', config.registriesConf)));
  const platform = config.platform ?? {};
  if (platform.os !== undefined) global.push(flag('--override-os', word('platform.os', platform.os)));
  if (platform.architecture !== undefined) global.push(flag('--override-arch', word('platform.architecture', platform.architecture)));
  if (platform.variant !== undefined) global.push(flag('--override-variant', word('platform.variant', platform.variant)));
  if (config.tmpDir !== undefined) global.push(flag('--tmpdir', path('tmpDir', config.tmpDir)));
  if (config.userAgentPrefix !== undefined) {
    if (!environment.features?.userAgentPrefix) {
      throw new ConfigurationError('userAgentPrefix needs skopeo 1.14 or newer (--user-agent-prefix); this skopeo does not have it');
    }
    global.push(`--user-agent-prefix=${config.userAgentPrefix}`);
  }

  const image: string[] = [];
  const secretFiles: Buffer[] = [];
  if (config.authFile !== undefined) image.push(flag('--authfile', path('authFile', config.authFile)));
  if (config.authData !== undefined) {
    secretFiles.push(Buffer.from(config.authData));
    image.push(`--authfile=/proc/self/fd/${FIRST_SECRET_FD + secretFiles.length - 1}`);
  }
  if (config.credentials !== undefined) {
    secretFiles.push(credentialsAuthFile(config.credentials));
    image.push(`--authfile=/proc/self/fd/${FIRST_SECRET_FD + secretFiles.length - 1}`);
  }
  if (config.authAnonymous) image.push('--no-creds');
  if (config.certificateDirectory !== undefined) image.push(flag('--cert-dir', path('certificateDirectory', config.certificateDirectory)));
  if (config.insecureSkipTlsVerification) image.push('--tls-verify=false');
  for (const key of config.decryptionKeys ?? []) {
    if (!environment.features?.decryptionKey) {
      throw new ConfigurationError(
        "decryptionKeys: this skopeo's experimental-image-proxy has no --decryption-key flag, so it cannot decrypt images",
      );
    }
    image.push(`--decryption-key=${key}`);
  }
  return { argv: [...wrapper, ...prefix, ...global, 'experimental-image-proxy', ...image], program: prefix[0]!, secretFiles, debug };
}

/** A NUL byte cannot travel in argv (or a path): refuse it as configuration, not a crash in spawn. */
function checkNoNul(value: unknown, name = 'config'): void {
  if (typeof value === 'string' && value.includes('\0')) throw new ConfigurationError(`${name} contains a NUL byte`);
  if (Array.isArray(value)) value.forEach((item, i) => checkNoNul(item, `${name}[${i}]`));
  else if (value && typeof value === 'object' && !(value instanceof Uint8Array)) {
    for (const [key, item] of Object.entries(value)) checkNoNul(item, name === 'config' ? key : `${name}.${key}`);
  }
}

function checkConflicts(config: ImageProxyConfig): void {
  const auth = (['authFile', 'authData', 'credentials', 'authAnonymous'] as const).filter((key) =>
    key === 'authAnonymous' ? config.authAnonymous === true : config[key] !== undefined,
  );
  if (auth.length > 1) {
    throw new ConfigurationError(`conflicting authentication options ${auth.join(' and ')}: choose one`);
  }
  if (config.policy !== undefined && config.insecurePolicy) {
    throw new ConfigurationError('conflicting options policy and insecurePolicy: choose one');
  }
}

/** A containers-auth.json document holding one registry's credentials. */
function credentialsAuthFile(credentials: Credentials): Buffer {
  const { registry, username, password } = credentials;
  if (typeof registry !== 'string' || !/^[A-Za-z0-9.-]+(:\d+)?(\/[^\s]*)?$/.test(registry)) {
    throw new ConfigurationError('credentials.registry must be a registry host such as "quay.io" or "localhost:5000"');
  }
  if (typeof username !== 'string' || username === '' || username.includes(':') || typeof password !== 'string') {
    throw new ConfigurationError('credentials need a non-empty username without ":" and a password string');
  }
  const auth = Buffer.from(`${username}:${password}`).toString('base64');
  return Buffer.from(JSON.stringify({ auths: { [registry]: { auth } } }));
}

// `--flag=value` in one word: a value can never be mistaken for another flag.
function flag(name: string, value: string): string {
  return `${name}=${value}`;
}

function path(name: string, value: string): string {
  if (typeof value !== 'string' || value === '') throw new ConfigurationError(`${name} must be a non-empty path`);
  return value;
}

function word(name: string, value: string): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_.]+$/.test(value)) {
    throw new ConfigurationError(`${name} must be a plain word such as "arm64", got ${JSON.stringify(value)}`);
  }
  return value;
}

function nonEmpty(value: string | undefined): boolean {
  return value !== undefined && value !== '' && value !== '0';
}
