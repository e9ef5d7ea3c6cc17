/**
 * `serve` (createRegistryServer and the CLI command): a read-only OCI
 * registry in front of real skopeo, pulled through by real clients. The
 * independent reference is `skopeo copy` straight from each source: the
 * image pulled through the server must be the same (manifest digest, or
 * where skopeo's own conversion differs from the proxy's, the same layers
 * and diff_ids), and always exactly what pullImage writes. One server with
 * every source mapped serves the whole file.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { createServer as createHttpServer, request, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createRegistryServer, formatRequestLog, ImageProxy, pullImage, type RegistryServer, type RequestLogEntry } from '../src/index.js';
import { ImageCache, type ServedImage } from '../src/serve/image-cache.js';
import { baseConfig, SKOPEO, tempDir } from './support/env.js';
import { tar } from './support/tar.js';
import { addToIndex, buildImage, noise, sha256, writeBlob, type BuiltImage, type LayerSpec } from './support/oci-layout.js';
import { RELEASE, SKOPEO_RELEASE } from './support/skopeo-release.js';
import { makeCertificates, run, skopeoAsync, startRegistry, type TestRegistry } from './support/registry.js';

const scratch = tempDir('cip-serve-test-');
const dir = (name: string): string => join(scratch.path, name);

/** gzip, uncompressed, gzip (the middle one large enough to be cut mid-blob). */
const LAYERS: LayerSpec[] = [
  { entries: [{ type: 'dir', name: 'etc/' }, { type: 'file', name: 'etc/config', content: 'v1\n', mode: 0o600 }, { type: 'file', name: 'a.bin', content: noise(60_000, 1) }] },
  { compression: 'none', entries: [{ type: 'file', name: 'big.bin', content: noise(6 * 1024 * 1024, 2) }] },
  { entries: [{ type: 'file', name: 'etc/.wh.config', content: '' }, { type: 'symlink', name: 'link', target: 'a.bin' }] },
];

let source: BuiltImage;
let registry: TestRegistry;
let proxy: ImageProxy;
let server: RegistryServer;
let port: number;
const log: RequestLogEntry[] = [];

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The connection ended before Content-Length bytes (or with an error). */
  aborted: boolean;
}

/** A GET over a Unix socket: status and body. */
function fetchUnix(socketPath: string, path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** One raw HTTP request; the path goes out exactly as given. */
function fetchRaw(method: string, path: string, options: { port?: number; headers?: Record<string, string>; tls?: { ca: string } } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const send = options.tls ? httpsRequest : request;
    const req = send({ host: '127.0.0.1', port: options.port ?? port, method, path, headers: options.headers, agent: false, ...(options.tls && { ca: options.tls.ca }) }, (res) => {
      const chunks: Buffer[] = [];
      let aborted = false;
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('aborted', () => (aborted = true));
      res.on('error', () => (aborted = true));
      res.on('close', () => {
        const body = Buffer.concat(chunks);
        const length = res.headers['content-length'];
        if (method !== 'HEAD' && length !== undefined && Number(length) !== body.length) aborted = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, aborted });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function errorCode(answer: Answer): string {
  return (JSON.parse(answer.body.toString()) as { errors: Array<{ code: string }> }).errors[0]!.code;
}

/**
 * `skopeo copy` into a new `dir:` (which keeps every blob as it comes: an
 * `oci:` destination would compress uncompressed layers); the manifest's
 * digest, the manifest and the config written.
 */
async function copyToDir(from: string, name: string, extra: string[] = []): Promise<Copied> {
  const target = dir(name);
  await skopeoAsync(['--insecure-policy', 'copy', '--quiet', '--retry-times=0', ...extra, from, `dir:${target}`]);
  return readDir(target);
}

interface Manifest {
  mediaType?: string;
  config: { digest: string; size: number };
  layers: Array<{ digest: string; size: number; mediaType: string }>;
}
interface Config {
  rootfs: { diff_ids: string[] };
}
interface Copied {
  digest: string;
  manifest: Manifest;
  config: Config;
}

function readDir(target: string): Copied {
  const raw = readFileSync(join(target, 'manifest.json'));
  const blob = (d: string): Buffer => readFileSync(join(target, d.split(':')[1]!));
  const manifest = JSON.parse(raw.toString()) as Manifest;
  // Every blob is whole: its bytes hash to its name (skopeo verified them too).
  for (const d of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) assert.equal(sha256(blob(d)), d, `${target}: blob ${d}`);
  return { digest: sha256(raw), manifest, config: JSON.parse(blob(manifest.config.digest).toString()) as Config };
}

/** The manifest the server serves. */
async function served(name: string, reference: string): Promise<{ digest: string; manifest: Manifest }> {
  const answer = await fetchRaw('GET', `/v2/${name}/manifests/${reference}`);
  assert.equal(answer.status, 200, answer.body.toString());
  return { digest: sha256(answer.body), manifest: JSON.parse(answer.body.toString()) as Manifest };
}

const through = (name: string): string => `docker://127.0.0.1:${port}/${name}`;
const PLAIN = ['--src-tls-verify=false'];

before(async () => {
  source = buildImage(dir('app'), 'v1', LAYERS);
  buildImage(dir('app'), 'v2', LAYERS.slice(0, 1));
  // A docker-archive: (plain tar layers, a v2s2 manifest the proxy converts).
  await skopeoAsync(['--insecure-policy', 'copy', '--quiet', source.reference, `docker-archive:${dir('app.tar')}:app:v1`]);
  registry = await startRegistry();
  await registry.push(source.reference, 'ns/oci:v1', { format: 'oci' });
  await registry.push(source.reference, 'ns/v2s2:v1', { format: 'v2s2' });
  // Fetched only by digest, in one test: no earlier test may have it cached.
  await registry.push(buildImage(dir('direct'), 'v1', LAYERS.slice(0, 1)).reference, 'ns/direct:v1', { format: 'oci' });
  proxy = await ImageProxy.spawn(baseConfig({ insecureSkipTlsVerification: true }));
  server = await createRegistryServer({
    proxy,
    repositories: [
      { name: 'app', source: `oci:${dir('app')}` },
      { name: 'archive', source: `docker-archive:${dir('app.tar')}` },
      { name: 'mirror/*', source: `docker://${registry.host}/` },
      { name: 'corrupt', source: `oci:${dir('corrupt')}` },
      { name: 'corrupt-tiny', source: `oci:${dir('corrupt-tiny')}` },
    ],
    idleClose: 300,
    onRequest: (entry) => log.push(entry),
  });
  port = (await server.listen(0)).port;
});

after(async () => {
  await server?.close();
  await proxy?.close();
  await registry?.stop();
  scratch[Symbol.dispose]();
});

describe('serve: pulled through by skopeo copy, compared with skopeo copy straight from the source', () => {
  it('oci: the same manifest digest as the source, and as pullImage writes', async () => {
    const got = await copyToDir(through('app:v1'), 'got-oci', PLAIN);
    const straight = await copyToDir(source.reference, 'straight-oci');
    assert.equal(got.digest, source.manifestDigest);
    assert.equal(straight.digest, source.manifestDigest);
    const pulled = await pullImage(proxy, source.reference, null);
    assert.equal(pulled.manifestDigest, got.digest);
    assert.equal((await served('app', 'v1')).digest, got.digest);
  });

  it('a registry holding OCI: the registry manifest, byte for byte', async () => {
    const got = await copyToDir(through('mirror/ns/oci:v1'), 'got-reg-oci', PLAIN);
    const straight = await copyToDir(registry.reference('ns/oci:v1'), 'straight-reg-oci', PLAIN);
    assert.equal(got.digest, straight.digest);
    assert.equal(got.digest, sha256(await registry.rawManifest('ns/oci:v1')));
  });

  it('a registry holding v2s2: served converted to OCI; same layers and diff_ids as skopeo copy, same manifest as pullImage', async () => {
    const got = await copyToDir(through('mirror/ns/v2s2:v1'), 'got-reg-v2s2', PLAIN);
    const straight = await copyToDir(registry.reference('ns/v2s2:v1'), 'straight-reg-v2s2', PLAIN);
    assert.equal(got.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(got.manifest.layers.map((l) => [l.digest, l.size]), straight.manifest.layers.map((l) => [l.digest, l.size]));
    assert.deepEqual(got.config.rootfs.diff_ids, source.layers.map((l) => l.diffId));
    assert.deepEqual(straight.config.rootfs.diff_ids, got.config.rootfs.diff_ids);
    assert.equal(straight.manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json', 'skopeo copy keeps v2s2');
    const pulled = await pullImage(proxy, registry.reference('ns/v2s2:v1'), null);
    assert.equal(pulled.manifestDigest, got.digest);
    assert.notEqual(pulled.sourceDigest, got.digest, 'the v2s2 manifest is served converted');
  });

  it('docker-archive: plain tar layers described as such; same layers and diff_ids as skopeo copy, same manifest as pullImage', async () => {
    const got = await copyToDir(through('archive:latest'), 'got-archive', PLAIN);
    const straight = await copyToDir(`docker-archive:${dir('app.tar')}`, 'straight-archive');
    assert.deepEqual(got.manifest.layers.map((l) => [l.digest, l.size]), straight.manifest.layers.map((l) => [l.digest, l.size]));
    assert.equal(straight.manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json', 'skopeo copy keeps the archive\'s v2s2');
    assert.equal(got.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json', 'served converted to OCI');
    const layerTypes = (await served('archive', 'latest')).manifest.layers.map((l) => l.mediaType);
    assert.deepEqual(layerTypes, LAYERS.map(() => 'application/vnd.oci.image.layer.v1.tar'), 'the archive\'s layers are plain tar, and described so');
    assert.deepEqual(got.config.rootfs.diff_ids, source.layers.map((l) => l.diffId));
    assert.deepEqual(straight.config.rootfs.diff_ids, got.config.rootfs.diff_ids);
    const pulled = await pullImage(proxy, `docker-archive:${dir('app.tar')}`, null);
    assert.equal(pulled.manifestDigest, got.digest);
  });
});

describe('serve: the distribution API', () => {
  it('GET /v2/ answers 200 with the API version header', async () => {
    const answer = await fetchRaw('GET', '/v2/');
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  it('manifests by tag and by digest, GET and HEAD: Content-Type, Content-Length and Docker-Content-Digest agree with the body', async () => {
    const byTag = await fetchRaw('GET', '/v2/app/manifests/v1');
    assert.equal(byTag.status, 200);
    assert.equal(byTag.headers['content-type'], 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(byTag.headers['docker-content-digest'], sha256(byTag.body));
    assert.equal(sha256(byTag.body), source.manifestDigest);
    const byDigest = await fetchRaw('GET', `/v2/app/manifests/${source.manifestDigest}`);
    assert.deepEqual(byDigest.body, byTag.body);
    const head = await fetchRaw('HEAD', '/v2/app/manifests/v1');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers['content-length'], String(byTag.body.length));
    assert.equal(head.headers['docker-content-digest'], source.manifestDigest);
    // A registry source opens by digest itself, without a tag first (an image
    // no other test fetches: one in the cache would be served from there).
    const raw = await registry.rawManifest('ns/direct:v1');
    const direct = await fetchRaw('GET', `/v2/mirror/ns/direct/manifests/${sha256(raw)}`);
    assert.equal(direct.status, 200);
    assert.deepEqual(direct.body, raw);
  });

  it('blobs, GET and HEAD: the bytes of their digest; the config too', async () => {
    for (const layer of source.layers) {
      const head = await fetchRaw('HEAD', `/v2/app/blobs/${layer.digest}`);
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], String(layer.size));
      const got = await fetchRaw('GET', `/v2/app/blobs/${layer.digest}`);
      assert.equal(got.status, 200);
      assert.equal(got.aborted, false);
      assert.equal(sha256(got.body), layer.digest);
      assert.equal(got.headers['docker-content-digest'], layer.digest);
    }
    const config = await fetchRaw('GET', `/v2/app/blobs/${source.configDigest}`);
    assert.equal(sha256(config.body), source.configDigest);
  });

  it('tags/list: an oci: layout lists its tags (n and last paginate); a single image lists latest; a registry cannot list', async () => {
    assert.deepEqual(JSON.parse((await fetchRaw('GET', '/v2/app/tags/list')).body.toString()), { name: 'app', tags: ['v1', 'v2'] });
    assert.deepEqual(JSON.parse((await fetchRaw('GET', '/v2/app/tags/list?n=1')).body.toString()).tags, ['v1']);
    assert.deepEqual(JSON.parse((await fetchRaw('GET', '/v2/app/tags/list?last=v1')).body.toString()).tags, ['v2']);
    assert.deepEqual(JSON.parse((await fetchRaw('GET', '/v2/archive/tags/list')).body.toString()).tags, ['latest']);
    const mirror = await fetchRaw('GET', '/v2/mirror/ns/oci/tags/list');
    assert.equal(mirror.status, 404);
    assert.equal(errorCode(mirror), 'UNSUPPORTED');
  });

  it('unknown names, tags and digests get their error codes', async () => {
    const cases: Array<[string, number, string]> = [
      ['/v2/nope/manifests/v1', 404, 'NAME_UNKNOWN'],
      ['/v2/app/manifests/v9', 404, 'MANIFEST_UNKNOWN'],
      ['/v2/archive/manifests/v1', 404, 'MANIFEST_UNKNOWN'],
      ['/v2/mirror/ns/absent/manifests/v1', 404, 'MANIFEST_UNKNOWN'],
      [`/v2/app/manifests/sha256:${'0'.repeat(64)}`, 404, 'MANIFEST_UNKNOWN'],
      [`/v2/app/blobs/sha256:${'0'.repeat(64)}`, 404, 'BLOB_UNKNOWN'],
      // A blob of another repository's manifest is not this repository's.
      [`/v2/archive/blobs/${source.layers[0]!.digest}`, 404, 'BLOB_UNKNOWN'],
      ['/v2/app/blobs/sha256:xyz', 400, 'DIGEST_INVALID'],
      ['/v2/app/manifests/md5:00', 400, 'DIGEST_INVALID'],
    ];
    for (const [path, status, code] of cases) {
      const answer = await fetchRaw('GET', path);
      assert.equal(answer.status, status, path);
      assert.equal(errorCode(answer), code, path);
    }
  });

  it('write methods answer 405 UNSUPPORTED', async () => {
    for (const [method, path] of [['PUT', '/v2/app/manifests/v1'], ['POST', '/v2/app/blobs/uploads/'], ['DELETE', `/v2/app/blobs/${source.configDigest}`], ['PATCH', '/v2/app/blobs/uploads/x']] as const) {
      const answer = await fetchRaw(method, path);
      assert.equal(answer.status, 405, `${method} ${path}`);
      assert.equal(errorCode(answer), 'UNSUPPORTED');
      assert.equal(answer.headers.allow, 'GET, HEAD');
    }
  });

  it('traversal and injection attempts never reach a source: each is refused by the grammar', async () => {
    const before = log.length;
    // Each is answered by the grammar itself (400, or 404 "not a valid tag"), never by a source.
    const attempts: Array<[string, string]> = [
      ['/v2/../app/manifests/v1', 'NAME_INVALID'],
      ['/v2/app/../corrupt/manifests/v1', 'NAME_INVALID'],
      ['/v2/%2e%2e/app/manifests/v1', 'NAME_INVALID'],
      ['/v2/app%2f..%2fcorrupt/manifests/v1', 'NAME_INVALID'],
      ['/v2/mirror/../../etc/manifests/v1', 'NAME_INVALID'],
      ['/v2/mirror/ns/oci:v1/manifests/v1', 'NAME_INVALID'],
      ['/v2/App/manifests/v1', 'NAME_INVALID'],
      ['/v2/mirror/ns//oci/manifests/v1', 'NAME_INVALID'],
      ['/v2/mirror/' + 'a/'.repeat(130) + 'x/manifests/v1', 'NAME_INVALID'],
      ['/v2/mirror/ns/oci/manifests/..%2f..%2fv1', 'MANIFEST_UNKNOWN'],
      ['/v2/mirror/ns/oci/manifests/v1%00', 'MANIFEST_UNKNOWN'],
      ['/v2/mirror/ns/oci/manifests/-v1', 'MANIFEST_UNKNOWN'],
      ['/v2/app/manifests/' + 'a'.repeat(129), 'MANIFEST_UNKNOWN'],
      ['/v2/mirror/ns/oci/manifests/v1@sha256:' + '0'.repeat(64), 'DIGEST_INVALID'],
      ['/v2/app/blobs/sha256:' + 'A'.repeat(64), 'DIGEST_INVALID'],
      ['/v2/app/blobs/sha256:' + '0'.repeat(64) + '/../x', 'NAME_UNKNOWN'],
      ['/etc/passwd', 'NAME_UNKNOWN'],
    ];
    for (const [path, code] of attempts) {
      const answer = await fetchRaw('GET', path);
      assert.equal(errorCode(answer), code, `${path}: ${answer.body.toString()}`);
      assert.equal(answer.status, code.endsWith('_INVALID') ? 400 : 404, path);
      const message = (JSON.parse(answer.body.toString()) as { errors: Array<{ message: string }> }).errors[0]!.message;
      if (code === 'MANIFEST_UNKNOWN') assert.match(message, /not a valid tag/, path);
      if (code === 'NAME_UNKNOWN') assert.match(message, /not a registry API path/, path);
    }
    // None of them opened anything: every answer came from the grammar, fast, without the proxy.
    assert.equal(log.length - before, attempts.length);
    assert.ok(server.proxy.running);
  });

  it('logs one line per request in the documented format', async () => {
    await fetchRaw('GET', '/v2/app/manifests/v1?secret=1');
    const entry = log.at(-1)!;
    const line = formatRequestLog(entry);
    assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z 127\.0\.0\.1 GET \/v2\/app\/manifests\/v1 200 \d+ \d+ms$/);
    assert.equal(entry.bytes, Number((await fetchRaw('HEAD', '/v2/app/manifests/v1')).headers['content-length']));
  });
});

/** The newest log entry for METHOD PATH after index `from`, once the server has written it. */
async function logged(from: number, method: string, path: string): Promise<RequestLogEntry> {
  const find = (): RequestLogEntry | undefined => log.slice(from).reverse().find((entry) => entry.method === method && entry.path === path);
  await eventually(() => find() !== undefined, `the log entry of ${method} ${path}`);
  return find()!;
}

/** The one error of an error body, without its (always null) detail. */
function errorOf(answer: Answer): { code: string; message: string } {
  const { code, message, ...rest } = (JSON.parse(answer.body.toString()) as { errors: Array<{ code: string; message: string; detail: unknown }> }).errors[0]!;
  assert.deepEqual(rest, { detail: null });
  return { code, message };
}

describe('serve: headers, messages and the request log', () => {
  it('/v2/ is {} as JSON; blobs are octet-streams; the log counts body bytes (none for HEAD) and the time taken', async () => {
    const base = await fetchRaw('GET', '/v2/');
    assert.deepEqual([base.body.toString(), base.headers['content-type'], base.headers['content-length']], ['{}', 'application/json', '2']);
    await served('app', 'v1');
    const big = source.layers[1]!;
    const from = log.length;
    const started = performance.now();
    const streamed = await fetchRaw('GET', `/v2/app/blobs/${big.digest}`);
    const entry = await logged(from, 'GET', `/v2/app/blobs/${big.digest}`);
    const elapsed = performance.now() - started;
    assert.equal(streamed.headers['content-type'], 'application/octet-stream');
    assert.equal(sha256(streamed.body), big.digest);
    assert.deepEqual([entry.status, entry.bytes, entry.outcome], [200, big.size, undefined], 'a whole blob: its size, no outcome');
    assert.ok(entry.ms >= 0 && entry.ms <= elapsed, `${entry.ms} ms logged, ${elapsed} ms around it`);
    const config = await fetchRaw('GET', `/v2/app/blobs/${source.configDigest}`);
    assert.equal(config.headers['content-type'], 'application/octet-stream');
    for (const path of ['/v2/', '/v2/app/manifests/v1', `/v2/app/blobs/${big.digest}`, `/v2/app/blobs/${source.configDigest}`, '/v2/nope/manifests/v1']) {
      const at = log.length;
      const head = await fetchRaw('HEAD', path);
      assert.equal(head.body.length, 0, path);
      const headEntry = await logged(at, 'HEAD', path);
      assert.equal(headEntry.bytes, 0, `HEAD ${path} sends no body`);
      assert.equal(headEntry.status, head.status, path);
    }
    assert.equal((await fetchRaw('HEAD', `/v2/app/blobs/${big.digest}`)).headers['content-type'], 'application/octet-stream');
  });

  it('a response larger than the socket takes is logged once it went out, with its size', async () => {
    // A config of 3 MiB (skopeo takes up to 4), in the form Go writes it, so it is served from memory;
    // through a Unix socket, whose buffers (about 200 KiB) cannot take it at once.
    const layout = dir('big-config');
    const layer = buildImage(layout, 'small', LAYERS.slice(2)).layers[0]!;
    const config = Buffer.from(JSON.stringify({ created: '2026-01-01T00:00:00Z', architecture: 'amd64', os: 'linux', config: { Labels: { big: 'x'.repeat(3 * 1024 * 1024) } }, rootfs: { type: 'layers', diff_ids: [layer.diffId] } }));
    const configDigest = writeBlob(layout, config);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length }, layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }] }));
    addToIndex(layout, { digest: writeBlob(layout, manifest), size: manifest.length }, 'v1');
    await using own = await createRegistryServer({ proxy, repositories: [{ name: 'big', source: `oci:${layout}` }], onRequest: (entry) => log.push(entry) });
    const socketPath = dir('big-config.sock');
    const mounted = createHttpServer(own.handler);
    await new Promise<void>((resolve) => mounted.listen(socketPath, resolve));
    try {
      assert.equal((await fetchUnix(socketPath, '/v2/big/manifests/v1')).status, 200);
      const from = log.length;
      const got = await fetchUnix(socketPath, `/v2/big/blobs/${configDigest}`);
      assert.equal(sha256(got.body), configDigest);
      assert.equal((await logged(from, 'GET', `/v2/big/blobs/${configDigest}`)).bytes, config.length);
    } finally {
      mounted.closeAllConnections();
      await new Promise((resolve) => mounted.close(resolve));
    }
  });

  it("a config the proxy re-serialises (a docker-archive: written by hand) is served from memory, under the digest of the bytes served", async () => {
    // Keys in another order than Go writes them: GetFullConfig's bytes differ from the archive's config.json.
    const layer = tar([{ type: 'file', name: 'hand.txt', content: 'written by hand\n' }]);
    const config = Buffer.from(JSON.stringify({ rootfs: { diff_ids: [sha256(layer)], type: 'layers' }, os: 'linux', architecture: 'amd64' }));
    const archive = dir('hand.tar');
    writeFileSync(archive, tar([
      { type: 'file', name: 'manifest.json', content: JSON.stringify([{ Config: 'config.json', RepoTags: ['hand:v1'], Layers: ['layer.tar'] }]) },
      { type: 'file', name: 'config.json', content: config },
      { type: 'file', name: 'layer.tar', content: layer },
    ]));
    await using own = await createRegistryServer({ proxy, repositories: [{ name: 'hand', source: `docker-archive:${archive}` }] });
    const ownPort = (await own.listen(0)).port;
    const manifest = JSON.parse((await fetchRaw('GET', '/v2/hand/manifests/latest', { port: ownPort })).body.toString()) as Manifest;
    assert.notEqual(manifest.config.digest, sha256(config), 'the config served is not the archive\'s bytes');
    const got = await fetchRaw('GET', `/v2/hand/blobs/${manifest.config.digest}`, { port: ownPort });
    assert.equal(got.status, 200, got.body.toString());
    assert.equal(sha256(got.body), manifest.config.digest);
    assert.deepEqual((JSON.parse(got.body.toString()) as Config).rootfs.diff_ids, [sha256(layer)]);
  });

  it('every error names what is wrong, as JSON; HEAD gets the same status without a body', async () => {
    const zero = `sha256:${'0'.repeat(64)}`;
    const v2s2 = sha256(await registry.rawManifest('ns/v2s2:v1'));
    const converted = (await served('mirror/ns/v2s2', 'v1')).digest;
    const cases: Array<[string, string, number, string, string]> = [
      ['GET', '/v2/nope/manifests/v1', 404, 'NAME_UNKNOWN', 'no repository nope is served here'],
      ['GET', '/v2/nope/blobs/' + zero, 404, 'NAME_UNKNOWN', 'no repository nope is served here'],
      ['GET', '/v2/archive/manifests/v1', 404, 'MANIFEST_UNKNOWN', 'archive: no tag v1'],
      ['GET', `/v2/app/manifests/${zero}`, 404, 'MANIFEST_UNKNOWN', `app: no manifest ${zero} served yet (this source opens images by tag: fetch one first)`],
      ['GET', `/v2/app/blobs/${zero}`, 404, 'BLOB_UNKNOWN', `app: ${zero} is not a blob of a manifest served here (fetch the manifest first)`],
      ['GET', `/v2/mirror/ns/v2s2/manifests/${v2s2}`, 404, 'MANIFEST_UNKNOWN', `mirror/ns/v2s2@${v2s2} is served converted, as ${converted}`],
      ['GET', '/v2/mirror/ns/oci/tags/list', 404, 'UNSUPPORTED', 'the source of mirror/ns/oci cannot list its tags'],
      ['DELETE', '/v2/app/manifests/v1', 405, 'UNSUPPORTED', 'this registry is read-only: only GET and HEAD are served'],
    ];
    for (const [method, path, status, code, message] of cases) {
      const answer = await fetchRaw(method, path);
      assert.equal(answer.status, status, path);
      assert.deepEqual(errorOf(answer), { code, message }, path);
      assert.equal(answer.headers['content-type'], 'application/json', path);
      if (method === 'GET') {
        const head = await fetchRaw('HEAD', path);
        assert.deepEqual([head.status, head.body.length, head.headers['content-length']], [status, 0, String(answer.body.length)], `HEAD ${path}`);
      }
    }
  });

  it('tags/list: n=0 lists none; a negative or fractional n is no limit', async () => {
    const tags = async (query: string): Promise<string[]> => (JSON.parse((await fetchRaw('GET', `/v2/app/tags/list${query}`)).body.toString()) as { tags: string[] }).tags;
    assert.deepEqual(await tags('?n=0'), []);
    assert.deepEqual(await tags('?n=-1'), ['v1', 'v2']);
    assert.deepEqual(await tags('?n=1.5'), ['v1', 'v2']);
    assert.deepEqual(await tags('?last=v1&n=5'), ['v2']);
  });

  it("a repository keeps serving the blobs of each manifest it served, not only the last one's", async () => {
    await served('app', 'v1');
    await served('app', 'v2');
    const only = source.layers[1]!; // in v1, not in v2
    const answer = await fetchRaw('HEAD', `/v2/app/blobs/${only.digest}`);
    assert.equal(answer.status, 200);
  });

  it('a handler mounted on a Unix socket logs an empty remote address', async () => {
    const socketPath = dir('mounted.sock');
    const mounted = createHttpServer(server.handler);
    await new Promise<void>((resolve) => mounted.listen(socketPath, resolve));
    try {
      const from = log.length;
      assert.equal((await fetchUnix(socketPath, '/v2/')).status, 200);
      assert.equal((await logged(from, 'GET', '/v2/')).remoteAddress, '');
    } finally {
      mounted.closeAllConnections();
      await new Promise((resolve) => mounted.close(resolve));
    }
  });
});

describe('serve: listen, close and the images kept open', () => {
  it('listen refuses a port in use; close() lets a transfer under way finish, then closes every image but not a proxy it was given', async () => {
    await using own = await createRegistryServer({ proxy, repositories: [{ name: 'app', source: `oci:${dir('app')}` }] });
    const ownPort = (await own.listen(0)).port;
    assert.equal(own.server.listenerCount('error'), 0, 'listen() leaves no error listener behind');
    await using second = await createRegistryServer({ proxy, repositories: [{ name: 'app', source: `oci:${dir('app')}` }] });
    await assert.rejects(second.listen(ownPort), { code: 'EADDRINUSE' });
    assert.equal((await fetchRaw('GET', '/v2/app/manifests/v1', { port: ownPort })).status, 200);
    assert.equal(own.openImages, 1, 'the image stays open for idleClose (30 s by default)');
    const big = source.layers[1]!;
    let closing: Promise<void> | undefined;
    const body = await new Promise<{ bytes: Buffer; complete: boolean }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: ownPort, path: `/v2/app/blobs/${big.digest}`, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.once('data', () => (closing = own.close({ timeoutMs: 60_000 })));
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('close', () => resolve({ bytes: Buffer.concat(chunks), complete: res.complete }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.ok(closing, 'close() was called mid-transfer');
    await closing;
    assert.equal(body.complete, true, 'the transfer under way finished');
    assert.equal(sha256(body.bytes), big.digest);
    assert.equal(own.openImages, 0, 'close() closed the image');
    assert.ok(proxy.running, 'a proxy given to the server is left running');
  });

  it("close() waits for a request's handler to end (its log line) before it closes the images and resolves", async () => {
    // A tags/list whose index.json is a FIFO: its handler waits in readFile until the test writes it.
    const layout = dir('fifo');
    mkdirSync(layout);
    const index = join(layout, 'index.json');
    execFileSync('mkfifo', [index]);
    const entries: RequestLogEntry[] = [];
    await using own = await createRegistryServer({ proxy, repositories: [{ name: 'fifo', source: `oci:${layout}` }], onRequest: (entry) => entries.push(entry) });
    const ownPort = (await own.listen(0)).port;
    const cut = new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port: ownPort, path: '/v2/fifo/tags/list', agent: false }, (res) => res.resume());
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.end();
    });
    // The handler has opened the FIFO to read once a writer can open it without waiting.
    let writer: number | undefined;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      writer ??= openSync(index, constants.O_RDWR); // never waits on Linux: lets a reader's open through
      writeSync(writer, JSON.stringify({ schemaVersion: 2, manifests: [] }));
      closeSync(writer);
    };
    try {
      await eventually(() => {
        try {
          writer = openSync(index, constants.O_WRONLY | constants.O_NONBLOCK);
          return true;
        } catch {
          return false;
        }
      }, 'the handler to read index.json');
      let closed = false;
      const closing = own.close({ timeoutMs: 0 }).then(() => (closed = true));
      // The connection is cut at once (timeoutMs 0); close() itself waits for the handler, still reading.
      await cut;
      assert.equal(closed, false, 'close() resolved while a handler was still under way');
      release();
      await closing;
    } finally {
      release(); // a handler left waiting on the FIFO would hold a libuv thread for good
    }
    assert.deepEqual(entries.map((entry) => entry.path), ['/v2/fifo/tags/list'], 'the handler ended, and logged, before close() resolved');
  });

  it('close() closes a proxy the server spawned', async () => {
    const owned = await createRegistryServer({ proxy: baseConfig(), repositories: [{ name: 'app', source: `oci:${dir('app')}` }] });
    assert.ok(owned.proxy.running);
    await owned.close();
    assert.equal(owned.proxy.running, false);
  });

  it('an image whose tag moved at the source while it was closed: its blobs are 404 with a message, until the manifest is fetched again', async () => {
    const layout = dir('moving');
    const first = buildImage(layout, 'v1', [{ compression: 'none', entries: [{ type: 'file', name: 'one', content: 'first\n' }] }]);
    await using own = await createRegistryServer({ proxy, repositories: [{ name: 'moving', source: `oci:${layout}` }], idleClose: 0, tagTtl: 0 });
    const ownPort = (await own.listen(0)).port;
    assert.equal((await fetchRaw('GET', '/v2/moving/manifests/v1', { port: ownPort })).status, 200);
    await eventually(() => own.openImages === 0, 'the image to close (idleClose 0)');
    const second = buildImage(layout, 'v1', [{ compression: 'none', entries: [{ type: 'file', name: 'two', content: 'second\n' }] }]);
    const answer = await fetchRaw('GET', `/v2/moving/blobs/${first.layers[0]!.digest}`, { port: ownPort });
    assert.equal(answer.status, 404);
    assert.deepEqual(errorOf(answer), { code: 'BLOB_UNKNOWN', message: `the image behind this manifest changed at the source (${first.manifestDigest} is now ${second.manifestDigest}); fetch the manifest again` });
    assert.equal(sha256((await fetchRaw('GET', '/v2/moving/manifests/v1', { port: ownPort })).body), second.manifestDigest);
    assert.equal(sha256((await fetchRaw('GET', `/v2/moving/blobs/${second.layers[0]!.digest}`, { port: ownPort })).body), second.layers[0]!.digest);
  });
});

describe('serve: the image cache, with the real proxy', () => {
  const tiny = (content: string): LayerSpec[] => [{ compression: 'none', entries: [{ type: 'file', name: 'f', content }] }];

  it('a tag is asked again once tagTtl has passed on the clock it is given (not before), without probing a manifest it knows; a failure is not kept', async () => {
    const layout = dir('ttl');
    const first = buildImage(layout, 'v1', tiny('first\n'));
    let clock = 1_000;
    let blobRequests = 0;
    // The real proxy, counting the blob requests made through it.
    const counting = new Proxy(proxy, {
      get(target, key) {
        const value: unknown = Reflect.get(target, key, target);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]): unknown => {
          if (key === 'getBlob') blobRequests++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const cache = new ImageCache(counting, { idleCloseMs: 30_000, tagTtlMs: 100, now: () => clock });
    const resolve = (tag: string): Promise<ServedImage> => cache.resolve('ttl', `oci:${layout}:${tag}`, () => `oci:${layout}:${tag}`);
    try {
      const a = await resolve('v1');
      assert.equal(a.manifest.digest, first.manifestDigest);
      clock = 1_100;
      const probes = blobRequests;
      assert.equal(await resolve('v1'), a, 'asked again: the same source manifest, the same image');
      assert.equal(blobRequests, probes, 'a source manifest already served is not probed again');
      const second = buildImage(layout, 'v1', tiny('second\n'));
      clock = 1_199;
      assert.equal(await resolve('v1'), a, 'within tagTtl: still the manifest the tag named');
      clock = 1_200;
      assert.equal((await resolve('v1')).manifest.digest, second.manifestDigest, 'tagTtl after: asked again');
      await assert.rejects(resolve('v9'));
      buildImage(layout, 'v9', tiny('ninth\n'));
      assert.ok(await resolve('v9'), 'a failed resolution is tried again at once');
      // close() waits for a resolution under way, and closes its image too.
      buildImage(layout, 'v3', tiny('third\n'));
      const pending = resolve('v3');
      await cache.close();
      await pending;
      assert.equal(cache.openImages, 0);
    } finally {
      await cache.close();
    }
  });

  it('a resolution that fails after a newer one replaced it leaves the newer one in place', async () => {
    const layout = dir('race');
    buildImage(layout, 'v1', tiny('race\n'));
    let clock = 0;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let first = true;
    // The real proxy, its first OpenImage held until the test lets it go.
    const gated = new Proxy(proxy, {
      get(target, key) {
        const value: unknown = Reflect.get(target, key, target);
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]): Promise<unknown> => {
          if (key === 'openImage' && first) {
            first = false;
            await held;
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const cache = new ImageCache(gated, { idleCloseMs: 30_000, tagTtlMs: 100, now: () => clock });
    const reference = `oci:${layout}:v1`;
    const resolve = (): Promise<ServedImage> => cache.resolve('race', reference, () => reference);
    try {
      const stale = resolve();
      clock = 100;
      const fresh = await resolve();
      rmSync(join(layout, 'index.json')); // the held resolution now fails
      release();
      await assert.rejects(stale);
      assert.equal(await resolve(), fresh, 'the newer resolution is still the one served');
    } finally {
      await cache.close();
    }
  });

  it('two source manifests served as the same manifest (a v2s2 manifest and the same one reformatted) are one image, closed with the cache', async () => {
    const raw = await registry.rawManifest('ns/v2s2:v1');
    const reformatted = Buffer.from(JSON.stringify(JSON.parse(raw.toString()), null, 2));
    const [host, registryPort] = registry.host.split(':');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host, port: Number(registryPort), method: 'PUT', path: '/v2/ns/v2s2/manifests/reformatted', headers: { 'Content-Type': 'application/vnd.docker.distribution.manifest.v2+json' }, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(reformatted);
    });
    assert.equal(status, 201);
    const cache = new ImageCache(proxy, { idleCloseMs: 30_000, tagTtlMs: 0 });
    try {
      const reference = (tag: string): string => `docker://${registry.host}/ns/v2s2:${tag}`;
      const first = await cache.resolve('mirror/ns/v2s2', reference('v1'), reference);
      const second = await cache.resolve('mirror/ns/v2s2', reference('reformatted'), reference);
      assert.notEqual(sha256(reformatted), sha256(raw), 'two source manifests');
      assert.equal(second, first, 'served as one manifest: one image');
      assert.equal(cache.openImages, 1);
      await cache.close();
      assert.equal(first.open, false, 'closed with the cache');
    } finally {
      await cache.close();
    }
  });

  it('an image in use stays open, however often one of its users releases it; unused, it closes after idleClose', async () => {
    const layout = dir('users');
    buildImage(layout, 'v1', tiny('used\n'));
    const cache = new ImageCache(proxy, { idleCloseMs: 0, tagTtlMs: 0 });
    try {
      const served = await cache.resolve('users', `oci:${layout}:v1`, () => `oci:${layout}:v1`);
      const one = await served.acquire();
      const two = await served.acquire();
      assert.equal(cache.openImages, 1);
      one.release();
      one.release();
      await sleep(20); // after the 0 ms idle timer, had one been armed
      assert.equal(served.open, true, 'the second user still holds it');
      two.release();
      await eventually(() => !served.open, 'the image to close once unused');
      assert.equal(cache.openImages, 0);
    } finally {
      await cache.close();
    }
  });
});

/** This process's open fds, and skopeo's. */
function fdCounts(): { self: number; skopeo: number } {
  return { self: readdirSync('/proc/self/fd').length, skopeo: readdirSync(`/proc/${proxy.pid}/fd`).length };
}

async function eventually(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('serve: faults, limits and load', () => {
  it('20 concurrent skopeo copy pulls of a 3-layer image: all whole, none deadlocked', async () => {
    const pulls = Array.from({ length: 20 }, (_, i) => copyToDir(through('app:v1'), `many-${i}`, PLAIN));
    const results = await Promise.all(pulls);
    for (const result of results) assert.equal(result.digest, source.manifestDigest);
  });

  it('a client that disconnects mid-blob leaves no fd and no open image behind; the proxy still serves', async (t) => {
    const big = source.layers[1]!;
    await fetchRaw('GET', '/v2/app/manifests/v1');
    await eventually(() => server.openImages === 0, 'the idle images to close');
    const baseline = fdCounts();
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: `/v2/app/blobs/${big.digest}`, agent: false }, (res) => {
          assert.equal(res.statusCode, 200);
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (error) => (req.destroyed ? undefined : reject(error)));
        req.end();
      });
    }
    await eventually(() => server.openImages === 0, 'the images to close after idleClose');
    // skopeo 1.9 (protocol 0.2.3) never closes a GetBlob's source file, read whole or not: its count is no probe there.
    const skopeoComparable = RELEASE.policyEnforcement;
    if (!skopeoComparable) t.diagnostic(`skopeo's fd count not compared: skopeo ${SKOPEO_RELEASE} leaks one fd per GetBlob by itself`);
    await eventually(() => {
      const now = fdCounts();
      return now.self <= baseline.self && (!skopeoComparable || now.skopeo <= baseline.skopeo);
    }, `fds back to ${JSON.stringify(baseline)} (now ${JSON.stringify(fdCounts())})`);
    const whole = await fetchRaw('GET', `/v2/app/blobs/${big.digest}`);
    assert.equal(sha256(whole.body), big.digest);
    assert.ok(log.some((entry) => entry.outcome === 'client-gone'), 'the log says the client went away');
  });

  it('a client that stops reading is cut off after clientIdleTimeout, and holds no one else up meanwhile', async () => {
    // Larger than what loopback socket buffers absorb.
    const big = buildImage(dir('big'), 'v1', [{ compression: 'none', entries: [{ type: 'file', name: 'big.bin', content: noise(32 * 1024 * 1024, 3) }] }]).layers[0]!;
    const entries: RequestLogEntry[] = [];
    await using impatient = await createRegistryServer({ proxy, repositories: [{ name: 'app', source: `oci:${dir('big')}` }], clientIdleTimeout: 1000, onRequest: (entry) => entries.push(entry) });
    const impatientPort = (await impatient.listen(0)).port;
    await fetchRaw('GET', '/v2/app/manifests/v1', { port: impatientPort });
    let received = 0;
    let complete = true;
    let resume!: () => void;
    const stalledDone = new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port: impatientPort, path: `/v2/app/blobs/${big.digest}`, agent: false }, (res) => {
        res.pause(); // reads nothing: the socket's buffers fill, then the server waits for drain
        resume = () => res.resume();
        res.on('data', (chunk: Buffer) => (received += chunk.length));
        req.once('close', () => {
          complete = res.complete;
          resolve();
        });
      });
      req.on('error', () => {});
      req.end();
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const other = await fetchRaw('GET', `/v2/app/blobs/${big.digest}`, { port: impatientPort });
    assert.equal(sha256(other.body), big.digest, 'another client is served while one stalls');
    await eventually(() => entries.some((entry) => entry.outcome === 'client-idle'), 'the log line of the cut client');
    // Reading again, the client gets what was in flight and then the end of a cut connection, short of Content-Length.
    resume();
    await stalledDone;
    assert.equal(complete, false);
    assert.ok(received < big.size, `${received} of ${big.size} bytes`);
  });

  it('a blob corrupt at the source: never a whole 200; skopeo copy fails', async () => {
    // Its config names the tag: another manifest than app:v1's. A large layer, and a small one the socket takes whole at once.
    const small: LayerSpec = { compression: 'none', entries: [{ type: 'file', name: 'small.bin', content: noise(300_000, 9) }] };
    const corrupt = buildImage(dir('corrupt'), 'bad', [...LAYERS, small]);
    await fetchRaw('GET', '/v2/corrupt/manifests/bad');
    for (const layer of [corrupt.layers[1]!, corrupt.layers[3]!]) {
      const bytes = readFileSync(layer.path);
      const middle = bytes.length >> 1;
      bytes[middle] = bytes[middle]! ^ 0xff; // same size, one byte flipped mid-blob
      writeFileSync(layer.path, bytes);
      const answer = await fetchRaw('GET', `/v2/corrupt/blobs/${layer.digest}`);
      assert.ok(answer.status === 500 || answer.aborted, `status ${answer.status}, ${answer.body.length} of ${layer.size} bytes`);
      assert.ok(answer.body.length < layer.size, `${answer.body.length} of ${layer.size} bytes: the last bytes wait for verification`);
    }
    await assert.rejects(copyToDir(through('corrupt:bad'), 'got-corrupt', PLAIN));
    const good = await fetchRaw('GET', `/v2/corrupt/blobs/${corrupt.layers[0]!.digest}`);
    assert.equal(sha256(good.body), corrupt.layers[0]!.digest, 'the proxy still serves');
  });

  it('a corrupt blob that fails before a byte went out (one chunk) is a proper 500 with an error body', async () => {
    const tiny: LayerSpec = { compression: 'none', entries: [{ type: 'file', name: 'tiny.txt', content: 'a blob skopeo writes at once\n' }] };
    const corrupt = buildImage(dir('corrupt-tiny'), 'bad', [tiny]);
    await fetchRaw('GET', '/v2/corrupt-tiny/manifests/bad');
    const layer = corrupt.layers[0]!;
    const bytes = readFileSync(layer.path);
    bytes[520] = bytes[520]! ^ 0xff; // in the file's content (after its 512-byte tar header): same size, another digest
    writeFileSync(layer.path, bytes);
    const answer = await fetchRaw('GET', `/v2/corrupt-tiny/blobs/${layer.digest}`);
    assert.equal(answer.status, 500, `status ${answer.status}, aborted ${answer.aborted}`);
    assert.equal(errorCode(answer), 'UNKNOWN');
    assert.match(answer.body.toString(), /failed verification/);
  });
});

describe('serve: endpoint auth and TLS', () => {
  it('basic auth over TLS: a client with the CA and the credentials pulls; without credentials 401, with wrong ones 401', async () => {
    const tlsDir = dir('tls');
    mkdirSync(tlsDir);
    const certs = await makeCertificates(tlsDir);
    const password = 'pw-' + createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 16);
    await using secured = await createRegistryServer({
      proxy,
      repositories: [{ name: 'app', source: `oci:${dir('app')}` }],
      auth: { username: 'puller', password },
      tls: { cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) },
    });
    const securedPort = (await secured.listen(0)).port;
    const ca = readFileSync(certs.caCert, 'utf8');
    const anonymous = await fetchRaw('GET', '/v2/', { port: securedPort, tls: { ca } });
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers['www-authenticate'], 'Basic realm="containers-image-proxy"');
    assert.deepEqual(errorOf(anonymous), { code: 'UNAUTHORIZED', message: 'authentication required' });
    const wrong = await fetchRaw('GET', '/v2/app/manifests/v1', { port: securedPort, tls: { ca }, headers: { authorization: `Basic ${Buffer.from('puller:nope').toString('base64')}` } });
    assert.equal(wrong.status, 401);
    assert.ok(!wrong.body.toString().includes(password));
    // skopeo with an auth file (not --src-creds: no secret on a command line) and the CA.
    const authFile = join(tlsDir, 'auth.json');
    writeFileSync(authFile, JSON.stringify({ auths: { [`127.0.0.1:${securedPort}`]: { auth: Buffer.from(`puller:${password}`).toString('base64') } } }), { mode: 0o600 });
    const got = await copyToDir(`docker://127.0.0.1:${securedPort}/app:v1`, 'got-tls', [`--src-authfile=${authFile}`, `--src-cert-dir=${certs.clientCertDir}`]);
    assert.equal(got.digest, source.manifestDigest);
    await assert.rejects(copyToDir(`docker://127.0.0.1:${securedPort}/app:v1`, 'got-tls-anon', [`--src-cert-dir=${certs.clientCertDir}`, '--src-no-creds']));
  });
});

describe('serve: podman pull (rootful, a private store)', { skip: process.getuid?.() !== 0 ? 'podman pull into a private store needs root' : false }, () => {
  // podman refuses a run root longer than 50 characters: under TMPDIR (where
  // the mutation hook's cleanup finds it) when that is short enough, else /tmp.
  const runroot = mkdtempSync(join(tmpdir().length + '/run-XXXXXX'.length <= 50 ? tmpdir() : '/tmp', 'run-'));
  after(() => rmSync(runroot, { recursive: true, force: true }));

  /** podman with its own store and a registries.conf that marks this server insecure (plain HTTP). */
  function podman(store: string, ...args: string[]): Promise<string> {
    const conf = join(store, 'registries.conf');
    writeFileSync(conf, `[[registry]]\nlocation = "127.0.0.1:${port}"\ninsecure = true\n`);
    const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: conf };
    const global = ['--root', join(store, 'root'), '--runroot', runroot, '--storage-driver', 'vfs', '--events-backend', 'none', '--cgroup-manager', 'cgroupfs'];
    return run('podman', [...global, ...args], { env, timeoutMs: 120_000 }).then((result) => result.stdout.trim());
  }

  it('podman pulls from oci:, docker-archive: and a registry (v2s2) through the server: the repository digest it records is the one served', async () => {
    const store = dir('podman');
    mkdirSync(store);
    for (const [name, tag] of [['app', 'v1'], ['archive', 'latest'], ['mirror/ns/v2s2', 'v1']] as const) {
      const image = `127.0.0.1:${port}/${name}:${tag}`;
      await podman(store, 'pull', '--quiet', image);
      // RepoDigests, not .Digest: podman keys images by config, and app:v1 and archive:latest share theirs.
      const digests = JSON.parse(await podman(store, 'image', 'inspect', '--format', '{{json .RepoDigests}}', image)) as string[];
      assert.ok(digests.includes(`127.0.0.1:${port}/${name}@${(await served(name, tag)).digest}`), `${image}: ${digests.join(' ')}`);
    }
  });

  it("podman's local store, served: pulled back through the server, the layers are the stored ones (uncompressed, with their diff_ids)", async () => {
    const store = dir('podman');
    const storage = `containers-storage:[vfs@${join(store, 'root')}+${runroot}]`;
    await using local = await createRegistryServer({ proxy, repositories: [{ name: 'stored', source: `${storage}127.0.0.1:${port}/app` }] });
    const localPort = (await local.listen(0)).port;
    const got = await copyToDir(`docker://127.0.0.1:${localPort}/stored:v1`, 'got-storage', PLAIN);
    assert.deepEqual(got.config.rootfs.diff_ids, source.layers.map((l) => l.diffId));
    assert.deepEqual(got.manifest.layers.map((l) => l.digest), source.layers.map((l) => l.diffId), 'the store serves its layers uncompressed');
  });
});

describe('serve: the command line', () => {
  const BIN = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

  /** Starts `containers-image-proxy serve ARGS` and waits for its "serving on" line; its port, stderr so far, and the child. */
  async function startCli(args: string[]): Promise<{ port: number; child: ReturnType<typeof spawn>; stderr: () => string; exited: Promise<number | null> }> {
    const child = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--skopeo', SKOPEO, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await eventually(() => /serving on http:\/\/127\.0\.0\.1:\d+\/v2\//.test(stderr) || child.exitCode !== null, 'the serving line', 20_000);
    const match = /serving on http:\/\/127\.0\.0\.1:(\d+)\//.exec(stderr);
    assert.ok(match, stderr);
    return { port: Number(match[1]), child, stderr: () => stderr, exited };
  }

  it('usage errors exit 2 and say what to do; --help shows the mappings and examples', () => {
    const help = spawnSync(process.execPath, [BIN, 'serve', '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--map NAME=SOURCE/);
    assert.match(help.stdout, /podman pull --tls-verify=false 127\.0\.0\.1:5000\/app:1\.0/);
    for (const [args, message] of [
      [[], /at least one --map/],
      [['--map', 'app'], /NAME=SOURCE/],
      [['--map', 'App=oci:/x'], /not a repository name/],
      [['--map', 'app=http://x'], /not a source this server can serve/],
      [['--map', 'app=oci:/x:v1'], /already names a tag/],
      [['--map', 'app=oci:/x', '--listen', 'nowhere'], /--listen takes HOST:PORT/],
    ] as const) {
      const result = spawnSync(process.execPath, [BIN, 'serve', ...args], { encoding: 'utf8' });
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
  });

  it('--auth-file, --max-connections, the log line on stderr, and a graceful SIGTERM that stops skopeo', async () => {
    const authFile = dir('cli-auth');
    const password = 'cli-' + createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 12);
    writeFileSync(authFile, `puller:${password}\n`, { mode: 0o600 });
    const cli = await startCli(['--map', `app=oci:${dir('app')}`, '--auth-file', authFile, '--max-connections', '1', '--shutdown-timeout', '1']);
    const authorization = `Basic ${Buffer.from(`puller:${password}`).toString('base64')}`;
    assert.equal((await fetchRaw('GET', '/v2/app/manifests/v1', { port: cli.port })).status, 401);
    const ok = await fetchRaw('GET', '/v2/app/manifests/v1', { port: cli.port, headers: { authorization } });
    assert.equal(sha256(ok.body), source.manifestDigest);
    await eventually(() => / GET \/v2\/app\/manifests\/v1 200 \d+ \d+ms\n/.test(cli.stderr()), 'the log line');
    assert.match(cli.stderr(), /^\S+Z 127\.0\.0\.1 GET \/v2\/app\/manifests\/v1 401 \d+ \d+ms$/m);
    // One connection at a time: a second is closed while the first is open.
    const held = connect(cli.port, '127.0.0.1');
    await new Promise((resolve) => held.once('connect', resolve));
    await assert.rejects(fetchRaw('GET', '/v2/', { port: cli.port, headers: { authorization } }), /socket hang up|ECONNRESET/);
    held.destroy();
    // Once the server saw it close, connections are served again.
    for (let attempt = 0; ; attempt++) {
      const answer = await fetchRaw('GET', '/v2/', { port: cli.port, headers: { authorization } }).catch(() => undefined);
      if (answer?.status === 200) break;
      assert.ok(attempt < 100, 'the server serves again once the held connection is closed');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // A transfer under way at SIGTERM: cut after --shutdown-timeout; skopeo stopped; exit 0.
    const skopeoPids = (): number[] =>
      readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).filter((pid) => {
        try {
          const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === cli.child.pid;
        } catch {
          return false;
        }
      }).map(Number);
    await eventually(() => skopeoPids().length > 0, 'the skopeo child');
    const children = skopeoPids();
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: cli.port, path: `/v2/app/blobs/${source.layers[1]!.digest}`, headers: { authorization }, agent: false }, (res) => {
        res.pause(); // a transfer that will not finish by itself
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
    cli.child.kill('SIGTERM');
    const started = Date.now();
    assert.equal(await cli.exited, 0, cli.stderr());
    assert.ok(Date.now() - started < 10_000);
    await eventually(() => children.every((pid) => !existsSync(`/proc/${pid}`)), 'skopeo to exit');
    assert.ok(!cli.stderr().includes(password), 'the password is never logged');
  });
});
