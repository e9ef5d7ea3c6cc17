/**
 * A throwaway container registry for integration tests: Debian's CNCF
 * distribution registry (`docker-registry`) on 127.0.0.1, over plain HTTP or
 * HTTPS with a CA made here, optionally behind htpasswd basic auth, plus
 * helpers to push fixtures into it with the selected skopeo and to sign them
 * with a throwaway GPG key.
 *
 * Everything runs asynchronously on purpose: the registry writes its log to
 * a pipe we read, and a synchronous child (execFileSync) would stop us reading
 * it, fill the pipe and stall the registry mid-request.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SKOPEO } from './env.js';
import { addToIndex, buildImage, writeBlob, type BuiltImage, type LayerSpec } from './oci-layout.js';

/** How much of the registry's log is kept for failure messages. */
const LOG_TAIL_CHARS = 128 * 1024;

/** A username and password for the registry's htpasswd file. */
export interface BasicAuth {
  username: string;
  password: string;
}

/** How {@link startRegistry} sets up the registry. */
export interface RegistryOptions {
  /** Serve HTTPS with a server certificate signed by a CA generated for this registry. Default: plain HTTP. */
  tls?: boolean;
  /** Require HTTP basic auth with this one user (bcrypt htpasswd). Default: open to anyone. */
  auth?: BasicAuth;
}

/** Options of {@link TestRegistry.push}. */
export interface PushOptions {
  /** Copy every image of a manifest list / OCI index (`skopeo copy --all`). */
  all?: boolean;
  /** Sign the pushed manifest with this key (`--sign-by`), storing the signature in its lookaside dir. */
  signer?: GpgSigner;
  /** The manifest format to push (`--format`): Docker's v2s2 or OCI. Default: as the source has it. */
  format?: 'v2s2' | 'oci';
}

/** Result of running a command with {@link run}. */
interface RunResult {
  stdout: string;
  /** stdout as bytes, exactly as written. */
  stdoutBytes: Buffer;
  stderr: string;
}

/**
 * Runs a command without a shell and resolves with its output; rejects with
 * its stderr when it fails. `input` is written to its stdin (for secrets that
 * should not sit on a command line).
 */
export function run(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(stdout);
      if (code === 0) resolve({ stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr });
      else reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${stderr.trim()}`));
    });
    // A child that exits without reading its stdin raises EPIPE here; its exit status tells the story.
    child.stdin.on('error', () => {});
    if (options.input === undefined) child.stdin.end();
    else child.stdin.end(options.input);
  });
}

/** Runs the skopeo release under test (`$SKOPEO`) asynchronously. */
export function skopeoAsync(args: readonly string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return run(SKOPEO, args, { env, timeoutMs: 120_000 });
}

/** Asks the kernel for a free TCP port on 127.0.0.1 by binding port 0. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port from bind(0)'))));
    });
  });
}

/**
 * Creates a test CA and a server certificate for 127.0.0.1 and localhost,
 * signed by it. Returns the paths; `clientCertDir` holds only `ca.crt`, the
 * layout containers/image expects from `--cert-dir` (`*.crt` are CAs; a stray
 * `*.key` without its `*.cert` would be an error).
 */
export async function makeCertificates(dir: string): Promise<{ caCert: string; serverCert: string; serverKey: string; clientCertDir: string }> {
  const tlsDir = join(dir, 'tls');
  const clientCertDir = join(dir, 'client-certs');
  mkdirSync(tlsDir, { recursive: true });
  mkdirSync(clientCertDir, { recursive: true });
  const caKey = join(tlsDir, 'ca.key');
  const caCert = join(tlsDir, 'ca.crt');
  const serverKey = join(tlsDir, 'server.key');
  const serverCsr = join(tlsDir, 'server.csr');
  const serverCert = join(tlsDir, 'server.crt');
  const extensions = join(tlsDir, 'server.ext');
  // P-256 keys: generated in milliseconds, accepted by Go's TLS stack.
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', [
    'req', '-x509', ...ec, '-keyout', caKey, '-out', caCert, '-days', '2', '-subj', '/CN=containers-image-proxy test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await run('openssl', ['req', ...ec, '-keyout', serverKey, '-out', serverCsr, '-subj', '/CN=127.0.0.1']);
  writeFileSync(
    extensions,
    [
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
    ].join('\n') + '\n',
  );
  await run('openssl', [
    'x509', '-req', '-in', serverCsr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', serverCert, '-days', '2', '-extfile', extensions,
  ]);
  writeFileSync(join(clientCertDir, 'ca.crt'), readFileSync(caCert));
  return { caCert, serverCert, serverKey, clientCertDir };
}

/** The registry's config.yml (YAML is a superset of JSON, so JSON it is). */
function registryConfig(options: {
  port: number;
  storage: string;
  tls?: { certificate: string; key: string };
  htpasswd?: string;
}): string {
  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: 'info', formatter: 'text', accesslog: { disabled: false } },
    storage: {
      filesystem: { rootdirectory: options.storage },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: {
      addr: `127.0.0.1:${options.port}`,
      // A fixed secret silences the "generating a random secret" warning; it only signs upload state.
      secret: 'containers-image-proxy-tests',
      ...(options.tls ? { tls: options.tls } : {}),
    },
  };
  if (options.htpasswd) config.auth = { htpasswd: { realm: 'containers-image-proxy-tests', path: options.htpasswd } };
  return JSON.stringify(config, null, 2);
}

/**
 * A running `docker-registry` on 127.0.0.1. Create it with
 * {@link startRegistry}; {@link stop} it in an `after()` hook.
 */
export class TestRegistry {
  #log = '';
  #exited = false;
  readonly #exit: Promise<void>;

  /** @internal use {@link startRegistry}. */
  constructor(
    readonly child: ChildProcess,
    /** The registry's port on 127.0.0.1. */
    readonly port: number,
    /** The temp dir holding config, storage, certificates and htpasswd; removed by {@link stop}. */
    readonly dir: string,
    /** Whether it serves HTTPS. */
    readonly tls: boolean,
    /** A `--cert-dir` / `certificateDirectory` that trusts this registry's CA (HTTPS only). */
    readonly certificateDirectory: string | undefined,
    /** The CA certificate (PEM) that signed the server certificate (HTTPS only). */
    readonly caCertificate: string | undefined,
    /** The one user allowed in, when auth is on. */
    readonly auth: BasicAuth | undefined,
  ) {
    const append = (text: string): void => {
      this.#log = (this.#log + text).slice(-LOG_TAIL_CHARS);
    };
    child.stdout?.setEncoding('utf8').on('data', append);
    child.stderr?.setEncoding('utf8').on('data', append);
    this.#exit = new Promise((resolve) => {
      child.once('close', () => {
        this.#exited = true;
        resolve();
      });
    });
  }

  /** `127.0.0.1:PORT`, the registry part of image references and auth file keys. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The last {@link LOG_TAIL_CHARS} characters the registry logged. */
  get log(): string {
    return this.#log;
  }

  /** Whether the registry process is still running. */
  get running(): boolean {
    return !this.#exited;
  }

  /** `docker://127.0.0.1:PORT/<repository:tag>`. */
  reference(repositoryAndTag: string): string {
    return `docker://${this.host}/${repositoryAndTag}`;
  }

  /**
   * The skopeo flags that reach this registry: `--dest-…` for `copy`'s
   * destination, `--src-…` for its source, unprefixed for `inspect`.
   */
  skopeoFlags(role?: 'dest' | 'src'): string[] {
    const prefix = role ? `--${role}-` : '--';
    const flags = this.tls ? [`${prefix}cert-dir=${this.certificateDirectory!}`] : [`${prefix}tls-verify=false`];
    // Credentials on a TEST command line are acceptable; the library never does this.
    if (this.auth) flags.push(`${prefix}creds=${this.auth.username}:${this.auth.password}`);
    return flags;
  }

  /**
   * Pushes `source` (any skopeo reference, e.g. `oci:/layout:v1`) to
   * `repositoryAndTag` (e.g. `app:v1`) with the selected skopeo, and returns
   * the `docker://` reference it now has.
   */
  async push(source: string, repositoryAndTag: string, options: PushOptions = {}): Promise<string> {
    const destination = this.reference(repositoryAndTag);
    const global = ['--insecure-policy'];
    const args = ['copy', '--quiet', '--retry-times=0', ...this.skopeoFlags('dest')];
    if (options.all) args.push('--all');
    if (options.format) args.push(`--format=${options.format}`);
    let env: NodeJS.ProcessEnv | undefined;
    if (options.signer) {
      global.push(`--registries.d=${options.signer.registriesDir}`);
      args.push(`--sign-by=${options.signer.fingerprint}`);
      env = { ...process.env, GNUPGHOME: options.signer.home };
    }
    try {
      await skopeoAsync([...global, ...args, source, destination], env);
    } catch (error) {
      throw new Error(`pushing ${source} to ${destination} failed: ${(error as Error).message}\n${this.logTail()}`);
    }
    return destination;
  }

  /** The raw manifest (or index) the registry serves for a reference, as skopeo sees it. */
  async rawManifest(repositoryAndTag: string): Promise<Buffer> {
    const { stdoutBytes } = await skopeoAsync(['inspect', '--raw', ...this.skopeoFlags(), this.reference(repositoryAndTag)]);
    return stdoutBytes;
  }

  /** The last lines of the registry's log, labelled, for assertion messages. */
  logTail(chars = 4000): string {
    const text = this.#log.trimEnd();
    return `--- registry ${this.host} log (tail) ---\n${text.length > chars ? '…' + text.slice(-chars) : text}`;
  }

  /** Stops the registry (SIGTERM, then SIGKILL) and removes its temp dir. Idempotent. */
  async stop(): Promise<void> {
    if (!this.#exited) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
      await this.#exit;
      clearTimeout(timer);
    }
    liveRegistries.delete(this.child);
    rmSync(this.dir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** @internal resolves once the registry has exited. */
  get exited(): Promise<void> {
    return this.#exit;
  }
}

/** Registries still running; killed if the test process exits without stopping them. */
const liveRegistries = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Answers `GET /v2/` with 200 (open) or 401 (auth)? Resolves with the status, or null when not reachable. */
function probe(port: number, ca: string | undefined): Promise<number | null> {
  return new Promise((resolve) => {
    const onResponse = (response: IncomingMessage): void => {
      response.resume();
      resolve(response.statusCode ?? null);
    };
    const request = ca
      ? httpsGet({ host: '127.0.0.1', port, path: '/v2/', ca, servername: 'localhost', timeout: 1000 }, onResponse)
      : httpGet({ host: '127.0.0.1', port, path: '/v2/', timeout: 1000 }, onResponse);
    request.once('timeout', () => request.destroy());
    request.once('error', () => resolve(null));
  });
}

/**
 * Starts `docker-registry serve` on 127.0.0.1 with a free port and its
 * storage in a temp dir, and resolves once it answers `GET /v2/` (200, or 401
 * with auth). Retries with another port if the one found was taken meanwhile.
 */
export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'cip-registry-'));
  try {
    const certificates = options.tls ? await makeCertificates(dir) : undefined;
    let htpasswd: string | undefined;
    if (options.auth) {
      // -i: the password comes on stdin, -B: bcrypt (the only scheme distribution accepts).
      const { stdout } = await run('htpasswd', ['-niB', options.auth.username], { input: `${options.auth.password}\n` });
      htpasswd = join(dir, 'htpasswd');
      writeFileSync(htpasswd, stdout);
    }
    const caPem = certificates ? readFileSync(certificates.caCert, 'utf8') : undefined;
    let lastLog = '';
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const configPath = join(dir, 'config.yml');
      writeFileSync(
        configPath,
        registryConfig({
          port,
          storage: join(dir, 'storage'),
          tls: certificates ? { certificate: certificates.serverCert, key: certificates.serverKey } : undefined,
          htpasswd,
        }),
      );
      const child = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
      const registry = new TestRegistry(child, port, dir, options.tls === true, certificates?.clientCertDir, caPem, options.auth);
      liveRegistries.add(child);
      if (!exitHookInstalled) {
        exitHookInstalled = true;
        process.on('exit', () => {
          for (const live of liveRegistries) live.kill('SIGKILL');
        });
      }
      const deadline = Date.now() + 15_000;
      while (registry.running && Date.now() < deadline) {
        const status = await probe(port, caPem);
        if (status === 200 || status === 401) return registry;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      lastLog = registry.log;
      child.kill('SIGKILL');
      await registry.exited;
      liveRegistries.delete(child);
      if (!/address already in use/i.test(lastLog)) break;
    }
    throw new Error(`docker-registry did not answer GET /v2/ in time; its log:\n${lastLog}`);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** A manifest list (OCI index) with an amd64 and an arm64 image, in one OCI layout. */
export interface MultiArchImage {
  /** `oci:<layout>:<tag>`, naming the index. */
  reference: string;
  indexDigest: string;
  index: Buffer;
  amd64: BuiltImage;
  arm64: BuiltImage;
}

/**
 * Builds an amd64 and an arm64 image into `layout` and an OCI index naming
 * both (with platform fields) under `tag`; push it with `push(ref, …, { all: true })`.
 */
export function buildMultiArchImage(layout: string, tag: string): MultiArchImage {
  const layer = (text: string): LayerSpec[] => [{ entries: [{ type: 'file', name: 'arch.txt', content: text }] }];
  const amd64 = buildImage(layout, `${tag}-amd64`, layer('amd64\n'), { architecture: 'amd64' });
  const arm64 = buildImage(layout, `${tag}-arm64`, layer('arm64\n'), { architecture: 'arm64' });
  const entry = (image: BuiltImage, platform: Record<string, string>): Record<string, unknown> => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: image.manifestDigest,
    size: readFileSync(image.manifestPath).length,
    platform,
  });
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [entry(amd64, { architecture: 'amd64', os: 'linux' }), entry(arm64, { architecture: 'arm64', os: 'linux', variant: 'v8' })],
    }),
  );
  const indexDigest = writeBlob(layout, index);
  addToIndex(layout, { mediaType: 'application/vnd.oci.image.index.v1+json', digest: indexDigest, size: index.length }, tag);
  return { reference: `oci:${layout}:${tag}`, indexDigest, index, amd64, arm64 };
}

/**
 * A throwaway GPG key and the files containers/image needs to sign and
 * verify with it: a GNUPGHOME, the exported public key, and a registries.d
 * dir whose `default-docker` lookaside is a local directory.
 *
 * registries.d key names: skopeo 1.9.3, 1.18 and 1.22 all accept both
 * `lookaside`/`lookaside-staging` and the older `sigstore`/`sigstore-staging`
 * (when both are present, `lookaside*` wins), so only `lookaside*` is written.
 */
export interface GpgSigner {
  /** The GNUPGHOME holding the secret key (pass it to the signing skopeo). */
  home: string;
  fingerprint: string;
  /** The ASCII-armoured public key, for a policy's `keyPath`. */
  publicKey: string;
  /** A registries.d dir pointing the lookaside (read and write) at {@link lookaside}. */
  registriesDir: string;
  /** Where signatures are stored: `<repository>@sha256=<hex>/signature-1`. */
  lookaside: string;
}

/** Creates a {@link GpgSigner} under `dir` (no passphrase, so signing needs no agent prompt). */
export async function createGpgSigner(dir: string): Promise<GpgSigner> {
  const home = join(dir, 'gnupg');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const env = { ...process.env, GNUPGHOME: home };
  // Uncompressed signatures keep the signed JSON payload readable in the
  // file, so a test can alter exactly one byte of it (see tamperSignature).
  writeFileSync(join(home, 'gpg.conf'), 'compress-level 0\n');
  const parameters = join(dir, 'key-parameters');
  writeFileSync(
    parameters,
    ['%no-protection', 'Key-Type: RSA', 'Key-Length: 2048', 'Key-Usage: sign', 'Name-Real: containers-image-proxy tests', 'Name-Email: signer@example.invalid', 'Expire-Date: 0', '%commit', ''].join('\n'),
  );
  await run('gpg', ['--batch', '--gen-key', parameters], { env });
  const { stdout: listing } = await run('gpg', ['--batch', '--with-colons', '--list-secret-keys'], { env });
  const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(listing)?.[1];
  if (!fingerprint) throw new Error(`no fingerprint in gpg --list-secret-keys:\n${listing}`);
  const { stdout: armoured } = await run('gpg', ['--batch', '--armor', '--export', fingerprint], { env });
  const publicKey = join(dir, 'signer.pub.asc');
  writeFileSync(publicKey, armoured);
  const lookaside = join(dir, 'lookaside');
  const registriesDir = join(dir, 'registries.d');
  mkdirSync(lookaside, { recursive: true });
  mkdirSync(registriesDir, { recursive: true });
  writeFileSync(join(registriesDir, 'default.yaml'), `default-docker:\n  lookaside: file://${lookaside}\n  lookaside-staging: file://${lookaside}\n`);
  return { home, fingerprint, publicKey, registriesDir, lookaside };
}

/** Stops the gpg-agent that gpg and skopeo's gpgme started for this GNUPGHOME. */
export async function stopGpgAgent(signer: GpgSigner): Promise<void> {
  await run('gpgconf', ['--kill', 'gpg-agent'], { env: { ...process.env, GNUPGHOME: signer.home } }).catch(() => {});
}

/**
 * Writes a containers-policy.json that rejects everything except images from
 * `registryHost` signed by `signer`'s key, and returns its path.
 */
export function writeSignedByPolicy(path: string, registryHost: string, signer: GpgSigner): string {
  const policy = {
    default: [{ type: 'reject' }],
    transports: { docker: { [registryHost]: [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: signer.publicKey }] } },
  };
  writeFileSync(path, JSON.stringify(policy, null, 2));
  return path;
}

/** The lookaside file of the first signature of `repository` (no host) at `manifestDigest`. */
export function signaturePath(signer: GpgSigner, repository: string, manifestDigest: string): string {
  return join(signer.lookaside, `${repository}@${manifestDigest.replace(':', '=')}`, 'signature-1');
}

/**
 * Alters the signed payload of a stored signature: one hex digit of the
 * manifest digest it vouches for. The OpenPGP packets stay well-formed, so
 * verification gets as far as the cryptographic check, and fails it.
 */
export function tamperSignature(path: string, manifestDigest: string): void {
  const bytes = readFileSync(path);
  const hex = manifestDigest.slice('sha256:'.length);
  const at = bytes.indexOf(hex, 0, 'latin1');
  if (at < 0) throw new Error(`${path} does not contain ${manifestDigest} in clear; is the signature compressed?`);
  bytes[at] = bytes[at] === 0x30 ? 0x31 : 0x30; // a different hex digit: '0' becomes '1', anything else '0'
  writeFileSync(path, bytes);
}
