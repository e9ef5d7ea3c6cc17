import { readFile } from 'node:fs/promises';
import { createRegistryServer, formatRequestLog, InvalidArgumentError, parseCredentials, parseMapping, type RegistryServerOptions } from '../../index.js';
import { integer, parseCommand, proxyConfig, UsageError } from '../options.js';

export const help = `Usage: containers-image-proxy serve --map NAME=SOURCE [--map …] [--listen 127.0.0.1:5000] [OPTIONS]

Serves images read-only as an OCI registry (the distribution spec's pull
side), so podman, skopeo, containerd or crane can pull from any source the
proxy reads. Nothing outside the mappings is reachable. Manifests are served
converted to OCI, consistent with the blobs served (clients verify every
digest). Logs one line per request on stderr:
  TIME ADDRESS METHOD PATH STATUS BYTES MSms [OUTCOME]
SIGINT or SIGTERM stops it: no new connections, transfers under way get
--shutdown-timeout seconds, then images and skopeo are closed.

Mappings (SOURCE without a tag; tags resolve inside it):
  app=oci:/srv/images/app          an OCI layout: app:TAG is oci:/srv/images/app:TAG
  app=oci-archive:/srv/app.tar     the same for an OCI archive
  mirror/*=docker://registry.example/ every name below mirror/, from a registry
                                   (mirror/ns/x:1 is docker://registry.example/ns/x:1)
  local/*=containers-storage:localhost/  podman's local store
  one=docker-archive:/srv/one.tar  a single image, served as the tag latest (also dir:)

Options:
  --map NAME=SOURCE            a repository and its source (repeatable; NAME/* for every name below)
  --listen HOST:PORT           where to listen (default 127.0.0.1:5000; loopback unless told otherwise)
  --auth-file PATH             require HTTP basic auth; PATH's first line is USER:PASSWORD
  --tls-cert PATH, --tls-key PATH   serve HTTPS with this certificate chain and key (PEM)
  --max-connections N          connections at once; more are closed (default 64)
  --client-idle-timeout SECONDS  cut a client that takes no bytes for this long (default 30)
  --idle-close SECONDS         close an image on the proxy after this long unused (default 30)
  --tag-ttl SECONDS            ask the source again what a tag names after this long (default 5)
  --shutdown-timeout SECONDS   how long transfers may finish after SIGINT/SIGTERM (default 10)

Examples:
  containers-image-proxy serve --map app=oci:/srv/images/app
  podman pull --tls-verify=false 127.0.0.1:5000/app:1.0

  containers-image-proxy serve --listen 127.0.0.1:5443 --map 'local/*=containers-storage:localhost/' \\
      --auth-file /etc/cip/serve.auth --tls-cert server.crt --tls-key server.key
  skopeo copy --src-creds user:… docker://127.0.0.1:5443/local/app:latest oci:./app:latest`;

const OPTIONS = {
  map: { type: 'string', multiple: true },
  listen: { type: 'string' },
  'auth-file': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'max-connections': { type: 'string' },
  'client-idle-timeout': { type: 'string' },
  'idle-close': { type: 'string' },
  'tag-ttl': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
} as const;

export async function run(args: string[]): Promise<void> {
  const { values, positionals } = parseCommand(args, OPTIONS);
  if (positionals.length) throw new UsageError(`serve takes no positional arguments (give each source with --map NAME=SOURCE), got ${JSON.stringify(positionals[0])}`);
  if (!values.map?.length) throw new UsageError('serve needs at least one --map NAME=SOURCE');
  if (!values['tls-cert'] !== !values['tls-key']) throw new UsageError('--tls-cert and --tls-key go together');
  const { host, port } = listenAddress(values.listen ?? '127.0.0.1:5000');
  const options: RegistryServerOptions = {
    proxy: proxyConfig(values),
    repositories: values.map.map((text) => usage(() => parseMapping(text))),
    maxConnections: integer('--max-connections', values['max-connections'], 64),
    clientIdleTimeout: seconds('--client-idle-timeout', values['client-idle-timeout'], 30),
    idleClose: seconds('--idle-close', values['idle-close'], 30),
    tagTtl: seconds('--tag-ttl', values['tag-ttl'], 5),
    ...(!values.quiet && { onRequest: (entry) => process.stderr.write(formatRequestLog(entry) + '\n') }),
  };
  const authFile = values['auth-file'];
  if (authFile) {
    const text = await readFile(authFile, 'utf8');
    options.auth = usage(() => parseCredentials(text, `--auth-file ${authFile}`));
  }
  if (values['tls-cert']) options.tls = { cert: await readFile(values['tls-cert']), key: await readFile(values['tls-key']!) };
  // Check the options (a UsageError) before anything is spawned.
  const registry = await createRegistryServer(options).catch((error: unknown) => {
    throw error instanceof InvalidArgumentError ? new UsageError(error.message) : error;
  });
  const stopped = new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  try {
    const address = await registry.listen(port, host);
    const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    process.stderr.write(`serving on ${options.tls ? 'https' : 'http'}://${shown}:${address.port}/v2/ (pid ${process.pid})\n`);
    await stopped;
  } finally {
    await registry.close({ timeoutMs: seconds('--shutdown-timeout', values['shutdown-timeout'], 10) });
  }
}

/** HOST:PORT, [IPv6]:PORT or PORT (on 127.0.0.1). */
function listenAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))?:?(\d+)$/.exec(text);
  if (!match) throw new UsageError(`--listen takes HOST:PORT, e.g. 127.0.0.1:5000; got ${JSON.stringify(text)}`);
  const port = Number(match[3]);
  if (port > 65535) throw new UsageError(`--listen: port ${port} is above 65535`);
  return { host: match[1] ?? match[2] ?? '127.0.0.1', port };
}

function seconds(name: string, value: string | undefined, fallback: number): number {
  return integer(name, value, fallback) * 1000;
}

function usage<T>(make: () => T): T {
  try {
    return make();
  } catch (error) {
    throw error instanceof InvalidArgumentError ? new UsageError(error.message) : error;
  }
}
